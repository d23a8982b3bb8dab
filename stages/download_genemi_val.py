"""Stage download_genemi_val: GeNeMi's validation set (rows num_sample, caption_i, image_i) into OUT.

Its Hugging Face dataset needs a login, so the files are placed by hand in DOWNLOADS/genemi_val/
(test.jsonl and its images, or test.parquet) and verified against the lock; absent, the stage fails
saying where they go. Needed when a listed benchmark reads its folder (genemi_val in eval.benchmarks;
genemi/roads.py), else it only writes OUT/SKIPPED.txt. With data.stand_in=synthetic it writes OUT/test.jsonl and its images from synthetic
scenes and their mined variations instead: no network, no lock entry.
"""

from download_options import download_command

from genemi.data.sources import fetch_genemi_val
from genemi.data.standin import write_genemi_val

main = download_command(
    "download_genemi_val",
    fetch_genemi_val,
    __doc__,
    progress=False,
    stand_in=write_genemi_val,
)

if __name__ == "__main__":
    main()
