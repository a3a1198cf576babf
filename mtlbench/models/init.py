"""Weight initialisation of the MTAN / MTPSL / JTR code bases."""
from torch import nn


def xavier_init(module: nn.Module) -> None:
    """Conv and linear weights xavier-normal, biases 0; normalisation weights 1, biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
