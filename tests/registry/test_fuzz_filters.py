"""Property-based fuzzing of the ``--where`` / ``--pool`` filter language: any text is parsed or refused with
exit code 4, and a parsed filter runs against a real registry or names what it did not find (exit 3)."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from t2reg.errors import T2RegError
from t2reg.registry.filters import KEYS, Filter, parse_filter

PIECES = ["model", "task", "source", "name", "tag.", "tag.k", "=", " in ", "(", ")", ",", " ", "\t", "in", "gsm8k",
          "native", "smollm2-135m", "a", "é", "\x00", "\x1b[2J", "'", '"', ";", "--", "%", "*", "1e400", "tag"]
filters = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=12).map("".join),
    st.text(max_size=40),
    st.lists(st.tuples(st.sampled_from([*KEYS, "tag.k", "bogus"]), st.lists(st.text(max_size=6), max_size=3),
                       st.booleans()), max_size=3).map(
        lambda clauses: ",".join(f"{k} in ({','.join(v)})" if use_in else f"{k}={''.join(v)}"
                                 for k, v, use_in in clauses)),
)


@settings(max_examples=3000, deadline=None, database=None, derandomize=True)
@given(filters)
def test_any_text_parses_or_is_refused_with_exit_4(text):
    try:
        parsed = parse_filter(text)
    except T2RegError as exc:
        assert exc.exit_code == 4, f"{type(exc).__name__}: {exc}"
        return
    assert isinstance(parsed, Filter) and parsed.clauses
    assert all(c.values and (c.key in KEYS or c.key.startswith("tag.")) for c in parsed.clauses)


@settings(max_examples=400, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(filters)
def test_any_filter_runs_against_a_real_registry_or_names_its_problem(registry, text):
    for run in (lambda: registry.list(where=text), lambda: registry.pool([text])):
        try:
            run()
        except T2RegError as exc:
            assert exc.exit_code in (3, 4), f"{type(exc).__name__} with exit code {exc.exit_code}: {exc}"
