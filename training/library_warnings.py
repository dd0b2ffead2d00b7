"""Library warnings that bury the trainer's progress bar and ask nothing of its user, silenced one by one.

Each entry names the exact message and the module that raises it, so that every other
warning (a real problem in a config, in the data, in our own calls) still shows. An
entry goes when its cause does: check after upgrading the library it names.
"""

from __future__ import annotations

import re
import warnings

# (message, module that raises it, category). torch 2.13 deprecated the two collectives
# DeepSpeed 0.19.8's ZeRO-3 uses to gather parameters and reduce-scatter gradients on
# every micro-batch (deepspeed/comm/torch.py picks them whenever torch has them; no
# setting chooses the new `*_single` ones). The calls are DeepSpeed's, not ours, and
# torch's wrapper (c10d_logger) is where the warning is raised.
LIBRARY_DEPRECATIONS: tuple[tuple[str, str, type[Warning]], ...] = (
    ("`torch.distributed.all_gather_into_tensor` is deprecated", "torch.distributed.c10d_logger", FutureWarning),
    ("`torch.distributed.reduce_scatter_tensor` is deprecated", "torch.distributed.c10d_logger", FutureWarning),
)


def quiet_library_deprecations() -> None:
    """Ignore exactly the warnings above in this process (each trainer process calls it)."""
    for message, module, category in LIBRARY_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=re.escape(message), category=category, module=re.escape(module) + "$")
