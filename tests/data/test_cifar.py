import pytest

from mlplab.data import CIFAR10DataModule, CIFAR100DataModule
from mlplab.errors import DataNotFoundError


@pytest.mark.parametrize(
    ("module", "folder"),
    [(CIFAR10DataModule, "cifar-10-batches-py"), (CIFAR100DataModule, "cifar-100-python")],
)
def test_missing_offline_is_one_line_with_files_folder_and_url(tmp_path, monkeypatch, module, folder):
    url = module.torchvision_class.url
    monkeypatch.setattr(
        module.torchvision_class, "url", url.replace("www.cs.toronto.edu", "unreachable.invalid")
    )
    with pytest.raises(DataNotFoundError) as error:
        module(data_dir=str(tmp_path)).setup()
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / folder) in message and "unreachable.invalid" in message


def test_dims_known_before_loading():
    assert CIFAR10DataModule().image_shape == (3, 32, 32) and CIFAR100DataModule().num_classes == 100
