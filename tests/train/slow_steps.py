"""`babylm-train` with a pause after every optimizer step, so that a test's signal lands mid-run.

torchrun runs this file in place of `-m babylm.train`. The pause comes from torch's global
optimizer post-step hook, so the product itself carries no test switch.
"""

import time

from torch.optim.optimizer import register_optimizer_step_post_hook

from babylm.train.cli import main

PAUSE_S = 0.4

if __name__ == "__main__":
    register_optimizer_step_post_hook(lambda *_: time.sleep(PAUSE_S))
    main()
