"""AlexNet with batch normalisation after every conv and hidden linear layer, as Xiao et al. 2018 trained it
with sign symmetry and feedback alignment (torchvision's AlexNet has no batch norm)."""

from __future__ import annotations

from torch import nn

from .registry import register_model


@register_model("alexnet_bn")
def alexnet_bn(input_shape: tuple[int, ...], num_classes: int, dropout: float = 0.0) -> nn.Module:
    """torchvision's AlexNet layout (64-192-384-256-256 channels, 4096-4096 classifier) with BatchNorm and, as in
    Xiao et al. 2018's model, no dropout (``dropout`` > 0 puts it back; the modules stay so layer names do not
    move); the classifier's last layer is ``classifier.8``."""
    c = input_shape[0]

    def conv(cin: int, cout: int, k: int, stride: int = 1, pad: int = 0) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, k, stride, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    features = nn.Sequential(
        *conv(c, 64, 11, 4, 2),
        nn.MaxPool2d(3, 2),
        *conv(64, 192, 5, pad=2),
        nn.MaxPool2d(3, 2),
        *conv(192, 384, 3, pad=1),
        *conv(384, 256, 3, pad=1),
        *conv(256, 256, 3, pad=1),
        nn.MaxPool2d(3, 2),
    )
    classifier = nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(256 * 36, 4096, bias=False),
        nn.BatchNorm1d(4096),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(4096, 4096, bias=False),
        nn.BatchNorm1d(4096),
        nn.ReLU(inplace=True),
        nn.Linear(4096, num_classes),
    )
    return AlexNetBN(features, classifier)


class AlexNetBN(nn.Module):
    """features -> 6x6 adaptive average pooling -> classifier."""

    def __init__(self, features: nn.Sequential, classifier: nn.Sequential) -> None:
        super().__init__()
        self.features, self.avgpool, self.classifier = features, nn.AdaptiveAvgPool2d((6, 6)), classifier

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))
