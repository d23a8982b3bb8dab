"""Stage download_hnc: HNC hnc_clean_strict_{train,val,test}.json from the Hugging Face dataset
real.hnc_repo (at real.hnc_revision).

Gated by data.source: with the default ``synthetic`` it only writes OUT/SKIPPED.txt (no network);
``dvc exp run -S data.source=hnc`` fetches for real.
"""

from download_options import download_command

from genemi.data.sources import fetch_hnc

main = download_command("download_hnc", fetch_hnc, __doc__)

if __name__ == "__main__":
    main()
