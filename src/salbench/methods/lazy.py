"""Heavy libraries load only in the code paths that use them.

Every workflow job is a short ``salbench`` process, and importing captum, zennit, timm or torchvision costs
seconds of it (zennit imports torchvision, which imports ``torch._dynamo``). So method modules import them
inside the functions that call them, a method names them in its ``libraries`` (imported when it is built, so
they are not timed as compute), and :func:`loaded_classes` tells whether a model holds a library's modules
without importing the library to find out.
"""

from __future__ import annotations

import sys

#: modules holding the architecture classes that canonizers and relevance rules match (by :func:`loaded_classes`)
TV_RESNET, TV_DENSENET, TIMM_RESNET = "torchvision.models.resnet", "torchvision.models.densenet", "timm.models.resnet"


def loaded_classes(module: str, *names: str) -> tuple[type, ...]:
    """The classes ``names`` of ``module`` if it has been imported, else ``()`` (which ``isinstance`` never matches).

    An object can only be an instance of a class whose module is loaded, so
    ``isinstance(m, loaded_classes("timm.models.resnet", "BasicBlock"))`` tells whether ``m`` is a timm block
    without importing timm for a model that was built without it.
    """
    found = sys.modules.get(module)
    return tuple(getattr(found, name) for name in names) if found is not None else ()
