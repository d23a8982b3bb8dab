"""Stage download_gqa: GQA images.zip (~20 GB) from real.gqa_images_url, kept whole as OUT/images.zip (never
extracted: the image root OUT/images reads its members images/<id>.jpg; genemi/images.py).

Needed only when its road or a listed benchmark reads it (genemi/roads.py); otherwise it writes only
OUT/SKIPPED.txt (no network). With data.stand_in=synthetic it writes OUT/images.zip of the stand-in HNC files' synthetic scenes
instead (genemi/data/standin.py): no network, no lock entry.
"""

from download_options import download_command

from genemi.data.sources import fetch_gqa
from genemi.data.standin import write_gqa

main = download_command("download_gqa", fetch_gqa, __doc__, stand_in=write_gqa)

if __name__ == "__main__":
    main()
