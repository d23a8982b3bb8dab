"""genemi: hard-negative training and evaluation of CLIP-style vision-language models.

The library never reads argv or assumes a working directory; the click commands in
``stages/`` do that and call into here.
"""

__version__ = "0.1.0"
