"""Stage download_stanza: the stanza models listed in genemi/config.py (GeNeMi's caption parser and
ARO Order's POS tagger), into OUT (a stanza model dir).

Needed by mine_real's parser (data.source=genemi, mine_real.backend=pretrained) and by ARO Order
benchmarks (genemi/roads.py); otherwise it only writes OUT/SKIPPED.txt (no network).
"""

from download_options import download_command

from genemi.data.sources import fetch_stanza

main = download_command("download_stanza", fetch_stanza, __doc__, progress=False)

if __name__ == "__main__":
    main()
