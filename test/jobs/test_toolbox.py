"""The tool allow-list's configuration: toolbox files, tool files and `<command_validator>`s
(pulsar.jobs.toolbox, pulsar.jobs.command_validator)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from defusedxml.ElementTree import fromstring

from pulsar.errors import ConfigurationError, Refused
from pulsar.jobs.command_validator import CommandValidator, ValidatorError
from pulsar.jobs.toolbox import build_tool_policy, toolbox_paths

JOB = Path("/srv/staging/42")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def toolbox(tmp_path: Path) -> Path:
    write(tmp_path / "tools" / "cat" / "cat.xml", """\
        <tool id="cat1" version="1.0.0">
          <validators><command_validator><literal value="cat"/><input/></command_validator></validators>
        </tool>
        """)
    write(tmp_path / "tools" / "sort.xml", '<tool id="sort1"/>')
    return write(tmp_path / "conf" / "toolbox.xml", """\
        <toolbox tool_path="../tools">
          <tool file="cat/cat.xml"/>
          <section id="text" name="Text"><tool file="sort.xml"/></section>
        </toolbox>
        """)


def test_toolbox_lists_tools_by_id_and_version(toolbox: Path) -> None:
    policy = build_tool_policy({"tool_config_files": str(toolbox)})
    assert policy is not None
    assert sorted(policy.tools) == [("cat1", "1.0.0"), ("sort1", "1.0.0")]  # no version: Galaxy's 1.0.0
    tool = policy.check_tool("cat1", "1.0.0")
    assert tool.directory == toolbox.parent.parent / "tools" / "cat"
    with pytest.raises(Refused, match="'cat1' version '2.0' is not in"):
        policy.check_tool("cat1", "2.0")
    with pytest.raises(Refused, match="names no tool_id"):
        policy.check_tool(None, None)


@pytest.mark.parametrize("key", ["tool_config_files", "tool_config_file"])
def test_a_comma_separated_string_or_a_list_relative_to_config_dir(toolbox: Path, tmp_path: Path, key: str) -> None:
    other = write(tmp_path / "conf" / "more.xml", '<toolbox><tool file="../tools/sort.xml"/></toolbox>')
    expected = [str(toolbox), str(other)]
    assert toolbox_paths({key: "toolbox.xml, more.xml", "config_dir": str(tmp_path / "conf")}) == expected
    assert toolbox_paths({key: ["toolbox.xml", "more.xml"], "config_dir": str(tmp_path / "conf")}) == expected
    assert build_tool_policy({}) is None


def test_unusable_options_stop_the_start(toolbox: Path, tmp_path: Path) -> None:
    def fails(options: dict[str, Any], message: str) -> None:
        with pytest.raises(ConfigurationError, match=message):
            build_tool_policy(options)

    fails({"tool_config_files": str(tmp_path / "missing.xml")}, "tool_config_files: no such file")
    fails({"tool_config_files": 7}, "comma-separated string or a list")
    fails({"tool_config_files": f"{toolbox},"}, "empty file name")
    fails({"tool_config_files": str(toolbox), "tool_config_file": "other.xml"}, "not both")
    fails({"tool_config_files": str(write(tmp_path / "a.xml", "<tools/>"))}, "not a toolbox file")
    fails({"tool_config_files": str(write(tmp_path / "b.xml", '<toolbox><tool file="nope.xml"/></toolbox>'))},
          "lists nope.xml, but there is no such file")
    fails({"tool_config_files": str(write(tmp_path / "c.xml", "<toolbox><tool"))}, "cannot read toolbox file")
    write(tmp_path / "t" / "bad.xml",
          '<tool id="x"><validators><command_validator><shell/></command_validator></validators></tool>')
    fails({"tool_config_files": str(write(tmp_path / "t" / "box.xml", '<toolbox><tool file="bad.xml"/></toolbox>'))},
          r"unknown element <shell>")
    write(tmp_path / "t" / "bad.xml", '<tool id="x"><command_validator><input/></command_validator></tool>')
    fails({"tool_config_files": str(tmp_path / "t" / "box.xml")}, "put <command_validator> inside <validators>")


def test_entities_and_dtds_are_refused(tmp_path: Path) -> None:
    secret = write(tmp_path / "secret.txt", "s3cret")
    tool = write(tmp_path / "evil.xml", f"""\
        <!DOCTYPE tool [<!ENTITY x SYSTEM "file://{secret}">]>
        <tool id="&x;"/>
        """)
    box = write(tmp_path / "box.xml", '<toolbox><tool file="evil.xml"/></toolbox>')
    assert tool.exists()
    with pytest.raises(ConfigurationError, match="was refused"):
        build_tool_policy({"tool_config_files": str(box)})


def validator(body: str) -> CommandValidator:
    return CommandValidator(fromstring(f"<command_validator>{body}</command_validator>"))


@pytest.mark.parametrize("body, command, fits", [
    ('<literal value="cat"/><input/>', "cat /srv/staging/42/inputs/dataset_1.dat", True),
    ('<literal value="cat"/><input/>', "  cat \t /srv/staging/42/inputs/sub/d.dat  ", True),
    ('<literal value="cat"/><input/>', "cat /srv/staging/42/inputs/../../etc/passwd", False),
    ('<literal value="cat"/><input/>', "cat /srv/staging/42/inputs/.hidden", False),
    ('<literal value="cat"/><input/>', "cat /srv/staging/41/inputs/d.dat", False),
    ('<literal value="cat"/><input/>', "cat /srv/staging/42/inputs/d.dat; rm -rf /", False),
    ('<literal value="cat"/><input/>', "cat\n/srv/staging/42/inputs/d.dat", False),  # a newline runs the input
    ('<literal value="cat"/><input/>', "cat /srv/staging/42/outputs/d.dat", False),
    ('<literal value="sh"/><tool_wrapper name="w.sh"/><output/>',
     "sh /srv/staging/42/tool_files/w.sh /srv/staging/42/outputs/o.dat", True),
    ('<literal value="sh"/><tool_wrapper name="w.sh"/>', "sh /srv/staging/42/tool_files/other.sh", False),
    ('<literal value="head"/><literal value="-n"/><integer/>', "head -n 10", True),
    ('<literal value="head"/><literal value="-n"/><integer/>', "head -n ten", False),
    ('<literal value="scale"/><float/>', "scale 1.5e3", True),
    ('<regex value="[a-z]+"/>', "abc", True),
    ('<regex value="[a-z]+"/>', "abc1", False),
    ('<literal value="cat"/><single_quote><input/></single_quote>', "cat '/srv/staging/42/inputs/a'", True),
    ('<literal value="cat"/><double_quote><input/></double_quote>', "cat /srv/staging/42/inputs/a", False),
    ('<literal value="x"/><configfile name="c.txt"/>', "x /srv/staging/42/configs/c.txt", True),
    ('<literal value="sort"/><optional><literal value="-r"/></optional><input/>',
     "sort -r /srv/staging/42/inputs/a", True),
    ('<literal value="sort"/><optional><literal value="-r"/></optional><input/>',
     "sort /srv/staging/42/inputs/a", True),
    ('<optional><literal value="-r"/></optional><literal value="sort"/>', "sort", True),
    ('<optional><literal value="-r"/></optional><literal value="sort"/>', "-r sort", True),
    ('<literal value="sort"/><optional><literal value="-r"/></optional>', "sort", True),
    ('<literal value="sort"/><optional><literal value="-r"/></optional>', "sort -r", True),
    ('<literal value="sort"/><optional><literal value="-r"/></optional>', "sort-r", False),
])
def test_command_validator(body: str, command: str, fits: bool) -> None:
    assert validator(body).matches(command, JOB) is fits


@pytest.mark.parametrize("body, message", [
    ("<literal/>", "needs a non-empty 'value'"),
    ('<regex value="("/>', "not a regular expression"),
    ('<tool_wrapper name="../x"/>', "plain file name"),
    ('<literal value="x" separate_by=","/>', "<literal> has no attribute separate_by"),
    ('<parameter name="p"><literal value="x"/></parameter>', "unknown element <parameter>"),
    ('<single_quote/>', "at least one child"),
    ('<literal value="a"><literal value="b"/></literal>', "no child elements"),
])
def test_unusable_validators(body: str, message: str) -> None:
    with pytest.raises(ValidatorError, match=message):
        validator(body)


def test_macro_tokens_in_the_version_are_expanded_as_galaxy_does(tmp_path: Path) -> None:
    write(tmp_path / "macros.xml", """\
        <macros>
          <token name="@TOOL_VERSION@">2.5.1</token>
          <token name="@VERSION_SUFFIX@">@SUFFIX_BASE@1</token>
          <import>more.xml</import>
        </macros>
        """)
    write(tmp_path / "more.xml", '<macros><token name="@SUFFIX_BASE@">galaxy</token></macros>')
    write(tmp_path / "tool.xml", """\
        <tool id="bwa" version="@TOOL_VERSION@+@VERSION_SUFFIX@">
          <macros><import>macros.xml</import></macros>
        </tool>
        """)
    box = write(tmp_path / "box.xml", '<toolbox><tool file="tool.xml"/></toolbox>')
    policy = build_tool_policy({"tool_config_files": str(box)})
    assert policy is not None and list(policy.tools) == [("bwa", "2.5.1+galaxy1")]
    write(tmp_path / "more.xml", '<macros><token name="@SUFFIX_BASE@">@VERSION_SUFFIX@</token></macros>')
    with pytest.raises(ConfigurationError, match="refer to each other in a loop"):
        build_tool_policy({"tool_config_files": str(box)})
    write(tmp_path / "more.xml", '<macros><import>more.xml</import></macros>')
    with pytest.raises(ConfigurationError, match="nest deeper than"):
        build_tool_policy({"tool_config_files": str(box)})
    write(tmp_path / "macros.xml", "<macros><import>missing.xml</import></macros>")
    with pytest.raises(ConfigurationError, match="cannot read macro file"):
        build_tool_policy({"tool_config_files": str(box)})
