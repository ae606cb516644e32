"""render: values are printed literally in the DOCX XML, never evaluated."""

from service import render


def test_literal_escapes_xml_and_template_syntax():
    env = render.environment()
    out = env.from_string("<w:t>{{ v }}</w:t>").render(v="O'Brien & <Sons> {{ 7*7 }} {% x %} {_{ y }_}")
    assert "&amp;" in out and "&lt;Sons&gt;" in out
    assert "{{" not in out and "{_{" not in out and "{%" not in out
    assert "&#123;&#123; 7*7 &#125;&#125;" in out


def test_newlines_in_values_become_spaces():
    out = render.environment().from_string("{{ v }}").render(v="a\nb\tc")
    assert out == "a b c"


def test_join_filter_output_is_literal_too():
    out = render.environment().from_string("{{ v|join(', ') }}").render(v=["{{a}}", "<b>"])
    assert out == "&#123;&#123;a&#125;&#125;, &lt;b&gt;"


def test_sandbox_blocks_unsafe_attributes():
    import pytest
    from jinja2.exceptions import SecurityError

    with pytest.raises(SecurityError):
        render.environment().from_string("{{ v.__class__.__mro__ }}").render(v="x")


def test_person_name():
    assert render.person_name({"first_name": "Maria", "middle_name": None, "last_name": "Gómez", "suffix": "Jr."}) \
        == "Gómez, Maria, Jr."


def test_literal_collapses_line_breaks_whether_or_not_the_value_is_printable():
    from markupsafe import escape

    from service.render import _SPACE, _literal

    values = ["Gómez & <Sons>", "a\r\nb\tc", "\u200fعبد\u200e", "x\x00y", "{{ 7*7 }}", "50%", "Zoë 🌿", "\a\f\v"]
    for value in values:
        expected = (str(escape(_SPACE.sub(" ", value)))
                    .replace("{", "&#123;").replace("}", "&#125;").replace("%", "&#37;"))
        assert str(_literal(value)) == expected, repr(value)


def test_courts_are_looked_up_once_in_a_while_not_per_record(tmp_path):
    """Courts.known is asked for every record: the folder is looked at again only after
    RECHECK_SECONDS, so a court added (or removed) while the worker runs is seen that late."""
    from service.render import Courts

    (tmp_path / "courts" / "LA").mkdir(parents=True)
    now = [0.0]
    courts = Courts(tmp_path, clock=lambda: now[0])
    assert courts.known("LA") and not courts.known("SF") and not courts.known("_default")
    (tmp_path / "courts" / "SF").mkdir()
    (tmp_path / "courts" / "LA").rmdir()
    assert courts.known("LA") and not courts.known("SF")  # as seen a moment ago
    now[0] += Courts.RECHECK_SECONDS
    assert courts.known("SF") and not courts.known("LA")
    assert courts.label("LA") == "_default" and courts.label("SF") == "SF"
