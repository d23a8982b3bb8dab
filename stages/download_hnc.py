"""Stage download_hnc: HNC hnc_clean_strict_{train,val,test}.json from the Hugging Face dataset
real.hnc_repo (at real.hnc_revision).

Needed only when its road or a listed benchmark reads it (genemi/roads.py); otherwise it writes only
OUT/SKIPPED.txt (no network). With data.stand_in=synthetic it writes HNC-format JSON files of synthetic scenes (genemi/data/standin.py)
instead: no network, no lock entry.
"""

from download_options import download_command

from genemi.data.sources import fetch_hnc
from genemi.data.standin import write_hnc

main = download_command("download_hnc", fetch_hnc, __doc__, stand_in=write_hnc)

if __name__ == "__main__":
    main()
