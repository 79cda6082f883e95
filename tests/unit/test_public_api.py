import inspect

import pigeon


def test_all_is_the_public_surface() -> None:
    public = {
        name
        for name, value in vars(pigeon).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert set(pigeon.__all__) == public


def test_every_public_name_says_what_it_guarantees() -> None:
    for name in pigeon.__all__:
        value = getattr(pigeon, name)
        target = value if inspect.isclass(value) or inspect.isfunction(value) else type(value)
        assert inspect.getdoc(target), f"{name} has no docstring"
        if inspect.isclass(value):
            for attr, member in vars(value).items():
                if not attr.startswith("_") and inspect.isfunction(member):
                    assert inspect.getdoc(member), f"{name}.{attr} has no docstring"


def test_failure_names_match_remote_error_and_old_names_still_work() -> None:
    import warnings
    from datetime import UTC, datetime

    from pigeon import Failure

    failure = Failure("LookupError", "only 3 left", 2, "invoices", datetime.now(UTC))
    assert (failure.type, failure.message) == ("LookupError", "only 3 left")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert (failure.error_type, failure.error_message) == ("LookupError", "only 3 left")
    assert [w.category for w in caught] == [DeprecationWarning, DeprecationWarning]
