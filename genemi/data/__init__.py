"""Real-data loaders: HNC (``hnc``) and COCO captions (``coco``), each producing manifest records."""
