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


def test_aliases_resolve_to_the_current_name_and_cannot_be_taken_twice():
    registry: Registry[int] = Registry("widget")
    registry.register("supervision", aliases=("allocation",))(7)
    assert registry.get("allocation") == 7 and registry.canonical("allocation") == "supervision"
    assert "allocation" in registry and registry.list() == ["supervision"]
    assert registry.aliases() == {"allocation": "supervision"}
    for taken in ("allocation", "supervision"):
        with pytest.raises(RegistryError, match="already registered"):
            registry.register(taken)(1)


def test_a_suite_using_a_plugins_old_name_gets_the_current_name_and_the_same_job(write_suite, monkeypatch):
    from mtlbench.config import load_suite
    from mtlbench.methods import SUPERVISIONS

    monkeypatch.setitem(SUPERVISIONS._aliases, "everything", "full")
    old = load_suite(write_suite({"methods": [{"name": "mine", "allocation": "everything"}]}))
    new = load_suite(write_suite({"methods": [{"name": "mine", "supervision": "full"}]}))
    assert old.jobs[0].config["method"]["supervision"] == {"name": "full", "per_image": "mean"}
    assert [j.id for j in old.jobs] == [j.id for j in new.jobs]
