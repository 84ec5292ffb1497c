"""What the local kernel treats as code to run, and what as prose that gets the help text."""

from __future__ import annotations

import pytest

from bot.agents.kernel.code_input import CodeRequest, code_in


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("```python\nx = 1\nx\n```", CodeRequest("x = 1\nx")),
        ("Run this please:\n```\nprint('hi')\n```\nthanks", CodeRequest("print('hi')")),
        ("```py\na = 1\n```\nand\n```python\nb = a\n```", CodeRequest("a = 1\n\nb = a")),
        ("```print(2)```", CodeRequest("print(2)")),
        ("```bash\nls -l\n```", CodeRequest("ls -l", "shell")),
        ("```sql\nselect 1\n```", None),
        ("print('hi')", CodeRequest("print('hi')")),
        ("df.head()", CodeRequest("df.head()")),
        ("x = 5", CodeRequest("x = 5")),
        ("%timeit sum(range(9))", CodeRequest("%timeit sum(range(9))")),
        ("hello", CodeRequest("hello", needs_names=frozenset({"hello"}))),
        ("not sure", CodeRequest("not sure", needs_names=frozenset({"sure"}))),
        ("42", None),
        ("what does this table show?", None),
        ("hello world", None),
        ("", None),
    ],
)
def test_code_in(text: str, expected: CodeRequest | None) -> None:
    assert code_in(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("```sh\nls\n```\n```python\nprint(1)\n```", CodeRequest("print(1)")),  # Python wins over shell
    ("```bash\nls\n```\n```zsh\npwd\n```", CodeRequest("ls\npwd", "shell")),
    ("```Python\nx = 1\n```", CodeRequest("x = 1")),  # tags are case-insensitive
    ("```r\nsummary(x)\n```", None),
    ("!ls -la", CodeRequest("!ls -la")),
    ("   print(1)   ", CodeRequest("print(1)")),
    ("# just a comment", None),
    ("thanks!", None),  # not Python
    ("'a quoted reply'", None),  # a lone constant
    ("df", CodeRequest("df", needs_names=frozenset({"df"}))),
    ("this is it", CodeRequest("this is it", needs_names=frozenset({"this", "it"}))),
    ("a and b or c", CodeRequest("a and b or c", needs_names=frozenset({"a", "b", "c"}))),
    ("x in y", CodeRequest("x in y", needs_names=frozenset({"x", "y"}))),
    ("-x", CodeRequest("-x")),  # arithmetic is code
    ("df.shape", CodeRequest("df.shape")),
    ("len(df)", CodeRequest("len(df)")),
    ("import pandas as pd", CodeRequest("import pandas as pd")),
    ("x = 1\nx", CodeRequest("x = 1\nx")),
    ("   ", None),
])
def test_more_messages_are_sorted_into_code_and_prose(text: str, expected: CodeRequest | None) -> None:
    assert code_in(text) == expected
