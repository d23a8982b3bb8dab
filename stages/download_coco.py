"""Stage download_coco: COCO 2014 val images, 2014 annotations and the Karpathy split
(real.coco_images_url, real.coco_annotations_url, real.karpathy_url), extracted under OUT.

Gated by data.source: with the default ``synthetic`` it only writes OUT/SKIPPED.txt (no network);
``dvc exp run -S data.source=hnc`` fetches for real.
"""

from download_options import download_command

from genemi.data.sources import fetch_coco

main = download_command("download_coco", fetch_coco, __doc__)

if __name__ == "__main__":
    main()
