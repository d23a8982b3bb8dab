"""Stage download_coco: COCO 2014 val images, 2014 annotations and the Karpathy split
(real.coco_images_url, real.coco_annotations_url, real.karpathy_url) under OUT: val2014.zip kept whole as
OUT/images/val2014.zip (image root OUT/images), the annotation zips extracted.

Needed only when its road or a listed benchmark reads it (genemi/roads.py); otherwise it writes only
OUT/SKIPPED.txt (no network). With data.stand_in=synthetic it writes the same layout from synthetic scenes and their
captions instead (genemi/data/standin.py): no network, no lock entry.
"""

from download_options import download_command

from genemi.data.sources import fetch_coco
from genemi.data.standin import write_coco

main = download_command("download_coco", fetch_coco, __doc__, stand_in=write_coco)

if __name__ == "__main__":
    main()
