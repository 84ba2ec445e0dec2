"""Depth human parsing (docs/METHOD.md 5): RGB parsing's head, loss and metrics (hcmoco.tasks.parsing)
on the masked depth map of person crops (domain synth_parsing4k by default), with the depth
backbone.
"""
from __future__ import annotations

from hcmoco.processed.transforms import normalise_depth
from hcmoco.tasks.parsing import Parsing


class DepthParsing(Parsing):
    name, title, modality = "depth_parsing", "Depth human parsing", "depth"
    fields = ("depth", "parsing")
    references = ()

    def input(self, arrays):
        return normalise_depth(arrays["depth"])


TASK = DepthParsing()
