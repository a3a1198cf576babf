import pytest

from mtlbench.registry import Registry, RegistryError, parameters
from mtlbench.data.scenarios import MaskFile


def test_duplicate_name_is_refused():
    registry: Registry[int] = Registry("widget")
    registry.register("a")(1)
    with pytest.raises(RegistryError, match="already registered"):
        registry.register("a")(2)


def test_unknown_name_lists_choices_and_suggests_the_closest():
    registry: Registry[int] = Registry("widget")
    for name in ("onelabel", "randomlabels"):
        registry.register(name)(0)
    with pytest.raises(RegistryError) as error:
        registry.get("onelable")
    assert "Did you mean 'onelabel'" in str(error.value)
    assert "onelabel, randomlabels" in str(error.value)
    assert registry.list() == ["onelabel", "randomlabels"] and "onelabel" in registry


def test_plugins_declare_parameters_as_data():
    assert parameters(MaskFile) == {"unlabeled": 0.0, "unlabeled_per_batch": 0, "path": "",
                                    "columns": ("seg", "depth", "normal")}
