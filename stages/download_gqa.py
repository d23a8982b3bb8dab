"""Stage download_gqa: GQA images.zip (~20 GB) from real.gqa_images_url, extracted to OUT/images/<id>.jpg.

Gated by data.source: with the default ``synthetic`` it only writes OUT/SKIPPED.txt (no network);
``dvc exp run -S data.source=hnc`` fetches for real.
"""

from download_options import download_command

from genemi.data.sources import fetch_gqa

main = download_command("download_gqa", fetch_gqa, __doc__)

if __name__ == "__main__":
    main()
