"""The bad-input catalogue's registry: each counted case is one test.

``docs/bad_input_policy.md`` counts *input kinds* (an input a public entry point must
answer correctly or refuse clearly) and *injected faults* (a damaged file, an interrupted
call, a concurrent writer ...). The first 111 input kinds and 63 faults were counted by
hand over the tables of the first trials (``tests/test_bad_input.py``, ``test_store_faults``,
``test_model_files``, ``test_trust``, ``test_cli_files``). Every case added since (issue 27)
is registered here, by the test module that runs it, with one decorator::

    CASES = Catalogue("runtime")

    @CASES.input("a set of texts")
    def _set(exported):            # arguments are pytest fixtures
        ...

    @pytest.mark.parametrize("name", CASES.names())
    def test_case(name, request):
        CASES.run(name, request)

``tests/test_bad_input.py::test_catalogue_totals_match_the_policy`` adds the registered
cases to the hand-counted ones and checks the totals the policy states.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: counted by hand before the registry existed (docs/bad_input_policy.md, "Totals")
HAND_COUNTED = {"input": 111, "fault": 63}


@dataclass
class Catalogue:
    """The cases of one area (``"readers"``, ``"runtime"`` ...), each an input or a fault."""

    area: str
    cases: dict[str, tuple[str, Callable[..., Any]]] = field(default_factory=dict)

    def _register(self, kind: str, name: str) -> Callable[[Callable[..., Any]], Callable]:
        def add(func: Callable[..., Any]) -> Callable[..., Any]:
            key = f"{self.area}: {name}"
            assert key not in self.cases, f"case {key!r} registered twice"
            self.cases[key] = (kind, func)
            return func
        return add

    def input(self, name: str) -> Callable[[Callable[..., Any]], Callable]:
        """Register an input kind."""
        return self._register("input", name)

    def fault(self, name: str) -> Callable[[Callable[..., Any]], Callable]:
        """Register an injected fault."""
        return self._register("fault", name)

    def names(self) -> list[str]:
        return list(self.cases)

    def count(self, kind: str) -> int:
        return sum(k == kind for k, _ in self.cases.values())

    def run(self, name: str, request: Any) -> None:
        """Run one case, its arguments taken from pytest fixtures of the same names."""
        _, func = self.cases[name]
        params = inspect.signature(func).parameters
        func(**{p: request.getfixturevalue(p) for p in params})
