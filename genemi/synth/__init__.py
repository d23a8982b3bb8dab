"""The built-in synthetic world: procedural scenes with a scene graph, captions and hard negatives."""
