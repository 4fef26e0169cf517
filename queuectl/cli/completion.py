"""`queuectl completion bash|zsh|fish`: shell completion generated from the argument parser.

The scripts are built by walking `build_parser()`, so a new command or option is
completed as soon as it exists. What a value completes to (states, config keys,
job ids, files) is decided here from the argument's choices, dest or metavar.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from queuectl.cli.parser import STATES, build_parser
from queuectl.settings import SETTINGS

PROG = "queuectl"

# Job ids come from the queue itself. The oldest 200 jobs bound the cost of one
# TAB press; ids are never evaluated by the shell, only compared and quoted.
_ID_LIST = 'import json, sys; sys.stdout.writelines(j["id"] + "\\n" for j in json.load(sys.stdin))'
_JOBS_ARGS = ("list", "--limit", "200")
_DEAD_JOBS_ARGS = ("dlq", "list")

_SIMPLE_WORD = re.compile(r"[A-Za-z0-9_.=+-]+")


@dataclass(frozen=True)
class Value:
    """What an option's value or a positional argument completes to."""

    kind: Literal["words", "files", "jobs", "dead_jobs", "none"]
    name: str
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    help: str
    value: Value | None  # None: a flag that takes no value
    # False for an option accepted but hidden from help (--db after the command): never
    # offered, but a value after it is still the option's, not a positional.
    offered: bool = True


@dataclass(frozen=True)
class Positional:
    value: Value
    repeats: bool  # nargs "*" or "+": every later word is one of these too


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]  # ("queuectl", "worker", "start")
    help: str
    hidden: bool  # reachable but never offered (help=SUPPRESS)
    options: tuple[Option, ...]
    positionals: tuple[Positional, ...]
    children: tuple[Command, ...]

    @property
    def key(self) -> str:
        return " ".join(self.path)

    def walk(self) -> list[Command]:
        """This command and every command below it, parents first."""
        found = [self]
        for child in self.children:
            found.extend(child.walk())
        return found

    def positional_at(self, index: int) -> Value | None:
        if index < len(self.positionals):
            return self.positionals[index].value
        if self.positionals and self.positionals[-1].repeats:
            return self.positionals[-1].value
        return None


def print_script(args: argparse.Namespace) -> int:
    """Print the completion script for `args.shell` on stdout."""
    sys.stdout.write(render(args.shell))
    return 0


def render(shell: str) -> str:
    """The completion script for bash, zsh or fish."""
    renderers: dict[str, Callable[[Command], str]] = {
        "bash": _bash,
        "zsh": _zsh,
        "fish": _fish,
    }
    return renderers[shell](command_tree(build_parser()))


def command_tree(
    parser: argparse.ArgumentParser,
    path: tuple[str, ...] = (PROG,),
    help_text: str = "",
    hidden: bool = False,
) -> Command:
    """Read the commands, options and positional arguments out of an argparse parser."""
    options: list[Option] = []
    positionals: list[Positional] = []
    children: list[Command] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, subparser in action.choices.items():
                child_help = helps.get(name)
                children.append(
                    command_tree(
                        subparser,
                        (*path, name),
                        child_help or "",
                        child_help in (None, argparse.SUPPRESS),
                    )
                )
        elif action.option_strings:
            value = None if action.nargs == 0 else _value_of(path, action)
            if action.help == argparse.SUPPRESS:
                if value is not None:
                    options.append(Option(tuple(action.option_strings), "", value, offered=False))
                continue
            options.append(Option(tuple(action.option_strings), action.help or "", value))
        else:
            repeats = action.nargs in ("*", "+", argparse.REMAINDER)
            positionals.append(Positional(_value_of(path, action), repeats))
    return Command(path, help_text, hidden, tuple(options), tuple(positionals), tuple(children))


def _value_of(path: tuple[str, ...], action: argparse.Action) -> Value:
    metavar = action.metavar if isinstance(action.metavar, str) else None
    name = (metavar or action.dest).lower().replace("_", " ")
    if action.choices is not None:
        return Value("words", name, tuple(str(choice) for choice in action.choices))
    if action.dest == "state":
        return Value("words", name, STATES)
    if metavar == "KEY":
        return Value("words", "key", tuple(SETTINGS))
    if metavar == "ID":
        return Value("dead_jobs" if path[-2:] == ("dlq", "retry") else "jobs", "job id")
    if action.dest in ("db", "file", "cwd"):
        return Value("files", name)
    return Value("none", name)


def _words(words: tuple[str, ...] | list[str]) -> str:
    """Space-separated words that every shell may see unquoted."""
    for word in words:
        if not _SIMPLE_WORD.fullmatch(word):
            raise ValueError(f"cannot complete {word!r}: not a plain word")
    return " ".join(words)


def _single_quoted(text: str) -> str:
    """Quote for bash and zsh."""
    return "'" + text.replace("'", "'\\''") + "'"


# bash ---------------------------------------------------------------------------------------

_BASH_MAIN = """\
_queuectl() {
    local cur=${COMP_WORDS[COMP_CWORD]} path=queuectl word option='' kind i skip=0 npos=0 REPLY
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        if [[ $word == = ]]; then
            # --option=value: COMP_WORDBREAKS splits it into three words.
            skip=1
        elif ((skip)); then
            skip=0
        elif [[ $word == -* ]]; then
            __queuectl_takes_value "$path" "$word" && skip=1 option=$word
        elif ((npos == 0)) && __queuectl_is_command "$path $word"; then
            path="$path $word"
        else
            npos=$((npos + 1))
        fi
    done
    [[ $cur == = ]] && cur=
    if ((skip)); then
        __queuectl_option_value "$path" "$option"
    elif [[ $cur == -* ]]; then
        __queuectl_options "$path"
        COMPREPLY=($(compgen -W "$REPLY" -- "$cur"))
        return
    else
        __queuectl_commands "$path"
        if [[ -n $REPLY ]]; then
            ((npos == 0)) && COMPREPLY=($(compgen -W "$REPLY" -- "$cur"))
            return
        fi
        __queuectl_positional "$path" "$npos"
    fi
    kind=$REPLY
    case $kind in
        words:*) COMPREPLY=($(compgen -W "${kind#words:}" -- "$cur")) ;;
        files)
            type compopt &>/dev/null && compopt -o filenames 2>/dev/null
            while IFS= read -r word; do COMPREPLY+=("$word"); done < <(compgen -f -- "$cur")
            ;;
        jobs) __queuectl_job_ids "$cur" %(jobs)s ;;
        dead_jobs) __queuectl_job_ids "$cur" %(dead_jobs)s ;;
    esac
}

__queuectl_job_ids() {
    local cur=$1 id quoted
    shift
    while IFS= read -r id; do
        [[ -n $id && $id == "$cur"* ]] || continue
        printf -v quoted '%%q' "$id"
        COMPREPLY+=("$quoted")
    done < <("${COMP_WORDS[0]}" "$@" --json 2>/dev/null | python3 -c %(python)s 2>/dev/null)
}

complete -F _queuectl queuectl
"""


def _bash_case(signature: str, arms: list[tuple[list[str], str]], default: str) -> str:
    """A function that looks its arguments up in a `case`: the generated script's tables."""
    function, _, arguments = signature.partition(" ")
    lines = [f"{function}() {{  # {arguments}", '    case "$*" in']
    for patterns, body in arms:
        lines.append(f"        {'|'.join(_bash_pattern(p) for p in patterns)}) {body} ;;")
    lines += [f"        *) {default} ;;", "    esac", "}", ""]
    return "\n".join(lines)


def _bash_pattern(pattern: str) -> str:
    """A quoted case pattern; a final " *" stays a glob (any positional index)."""
    if pattern.endswith(" *"):
        return _single_quoted(pattern[:-1]) + "*"
    return _single_quoted(pattern)


def _bash_words(words: list[str]) -> str:
    return "REPLY=" + _single_quoted(_words(words))


def _bash_kind(value: Value) -> str:
    """REPLY = the kind of a value, as `_queuectl` dispatches on it."""
    if value.kind == "none":
        return "REPLY="
    if value.kind == "words":
        return "REPLY=" + _single_quoted("words:" + _words(value.words))
    return "REPLY=" + _single_quoted(value.kind)


def _bash(tree: Command) -> str:
    commands = tree.walk()
    valued = [(c, o, o.value) for c in commands for o in c.options if o.value]
    menus = [(c, [k.path[-1] for k in c.children if not k.hidden]) for c in commands]
    positionals = [
        (f"{c.key} *" if p.repeats else f"{c.key} {index}", p.value)
        for c in commands
        for index, p in enumerate(c.positionals)
    ]
    flags = [(c, [flag for o in c.options if o.offered for flag in o.flags]) for c in commands]
    return "\n".join(
        [
            "# bash completion for queuectl, generated by `queuectl completion bash`.\n",
            _bash_case(
                "__queuectl_is_command PATH",
                [([c.key for c in commands], "return 0")],
                "return 1",
            ),
            _bash_case(
                "__queuectl_commands PATH",
                [([c.key], _bash_words(menu)) for c, menu in menus if menu],
                "REPLY=",
            ),
            _bash_case(
                "__queuectl_options PATH",
                [([c.key], _bash_words(names)) for c, names in flags if names],
                "REPLY=",
            ),
            _bash_case(
                "__queuectl_takes_value PATH OPTION",
                [([f"{c.key} {flag}" for c, o, _ in valued for flag in o.flags], "return 0")],
                "return 1",
            ),
            _bash_case(
                "__queuectl_option_value PATH OPTION",
                [([f"{c.key} {flag}" for flag in o.flags], _bash_kind(v)) for c, o, v in valued],
                "REPLY=",
            ),
            _bash_case(
                "__queuectl_positional PATH N",
                [([pattern], _bash_kind(value)) for pattern, value in positionals],
                "REPLY=",
            ),
            _BASH_MAIN % _template_values(_single_quoted),
        ]
    )


def _template_values(quote: Callable[[str], str]) -> dict[str, str]:
    return {
        "jobs": " ".join(_JOBS_ARGS),
        "dead_jobs": " ".join(_DEAD_JOBS_ARGS),
        "python": quote(_ID_LIST),
    }


# zsh ----------------------------------------------------------------------------------------

_ZSH_HELPERS = """\
_queuectl_job_ids() {
  local -a ids expl
  ids=(${(f)"$(queuectl %(jobs)s --json 2>/dev/null | python3 -c %(python)s 2>/dev/null)"})
  _wanted job-ids expl 'job id' compadd -a ids
}

_queuectl_dead_job_ids() {
  local -a ids expl
  ids=(${(f)"$(queuectl %(dead_jobs)s --json 2>/dev/null | python3 -c %(python)s 2>/dev/null)"})
  _wanted job-ids expl 'dead job id' compadd -a ids
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _queuectl "$@"
else
  compdef _queuectl queuectl
fi
"""


def _zsh_function(command: Command) -> str:
    return "_" + "_".join(command.path).replace("-", "_")


def _zsh_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def _zsh_action(value: Value) -> str:
    name = value.name.replace(":", "\\:")
    if value.kind == "words":
        return f"{name}:({_words(value.words)})"
    action = {
        "files": "_files",
        "jobs": "_queuectl_job_ids",
        "dead_jobs": "_queuectl_dead_job_ids",
    }.get(value.kind, " ")
    return f"{name}:{action}"


def _zsh_specs(command: Command) -> list[str]:
    specs: list[str] = []
    for option in command.options:
        # "!": zsh recognises the option (and its value) but does not offer it.
        exclusive = "" if option.offered else "!"
        if len(option.flags) > 1:
            exclusive += f"({' '.join(option.flags)})"
        for flag in option.flags:
            if option.value is None:
                specs.append(f"{exclusive}{flag}[{_zsh_help(option.help)}]")
            else:
                # `--db=` accepts `--db=X` and `--db X`; `-n+` accepts `-nX` and `-n X`.
                suffix = "=" if flag.startswith("--") else "+"
                action = _zsh_action(option.value)
                specs.append(f"{exclusive}{flag}{suffix}[{_zsh_help(option.help)}]:{action}")
    if command.children:
        specs += ["1: :->command", "*:: :->argument"]
    for positional in command.positionals:
        specs.append(("*:" if positional.repeats else ":") + _zsh_action(positional.value))
    return specs


def _zsh_command_function(command: Command) -> str:
    specs = " \\\n    ".join(_single_quoted(spec) for spec in _zsh_specs(command))
    lines = [f"{_zsh_function(command)}() {{"]
    if not command.children:
        lines += [f"  _arguments -s -S \\\n    {specs}", "}", ""]
        return "\n".join(lines)
    described = " ".join(
        _single_quoted(f"{child.path[-1]}:{child.help}")
        for child in command.children
        if not child.hidden
    )
    lines += [
        "  local curcontext=$curcontext state state_descr line ret=1",
        "  typeset -A opt_args",
        f"  _arguments -C -s -S \\\n    {specs} && ret=0",
        "  case $state in",
        "    command)",
        "      local -a commands",
        f"      commands=({described})",
        f"      _describe -t commands {_single_quoted(command.key + ' command')} commands && ret=0",
        "      ;;",
        "    argument)",
        f"      curcontext=${{curcontext%:*:*}}:{'-'.join(command.path)}-$words[1]:",
        "      case $words[1] in",
    ]
    for child in command.children:
        lines.append(f"        {child.path[-1]}) {_zsh_function(child)} && ret=0 ;;")
    lines += ["      esac", "      ;;", "  esac", "  return ret", "}", ""]
    return "\n".join(lines)


def _zsh(tree: Command) -> str:
    parts = [
        "#compdef queuectl",
        "# zsh completion for queuectl, generated by `queuectl completion zsh`.",
        "",
    ]
    parts += [_zsh_command_function(command) for command in tree.walk()]
    parts.append(_ZSH_HELPERS % _template_values(_single_quoted))
    return "\n".join(parts)


# fish ---------------------------------------------------------------------------------------

_FISH_HELPERS = """\
function __queuectl_state --description 'Print the command path and the number of positionals'
    set -l commands %(commands)s
    set -l valued %(valued)s
    set -l words (commandline -opc)
    set -e words[1]
    set -l path queuectl
    set -l npos 0
    set -l skip 0
    for word in $words
        if test $skip -eq 1
            set skip 0
        else if string match -q -- '-*' $word
            contains -- "$path $word" $valued; and set skip 1
        else if test $npos -eq 0; and contains -- "$path $word" $commands
            set path "$path $word"
        else
            set npos (math $npos + 1)
        end
    end
    echo $path
    echo $npos
end

function __queuectl_at --description 'Is the command line at PATH (and at positional N)?'
    set -l state (__queuectl_state)
    test "$state[1]" = "$argv[1]"; or return 1
    test (count $argv) -lt 2; or test "$state[2]" = "$argv[2]"
end

function __queuectl_job_ids
    queuectl $argv --json 2>/dev/null | python3 -c %(python)s 2>/dev/null
end

complete -c queuectl -f
"""


def _fish_quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_value(value: Value) -> str:
    if value.kind == "words":
        return "-a " + _fish_quoted(_words(value.words))
    if value.kind == "files":
        return "-F"
    if value.kind == "jobs":
        return "-a " + _fish_quoted(f"(__queuectl_job_ids {' '.join(_JOBS_ARGS)})")
    if value.kind == "dead_jobs":
        return "-a " + _fish_quoted(f"(__queuectl_job_ids {' '.join(_DEAD_JOBS_ARGS)})")
    return ""


def _fish_lines(command: Command) -> list[str]:
    def complete(condition: str, rest: str) -> str:
        return f"complete -c queuectl -n {_fish_quoted('__queuectl_at ' + condition)} {rest}"

    where = f'"{command.key}"'
    lines = []
    for child in command.children:
        if not child.hidden:
            lines.append(
                complete(f"{where} 0", f"-a {child.path[-1]} -d {_fish_quoted(child.help)}")
            )
    for option in (option for option in command.options if option.offered):
        flags = []
        for flag in option.flags:
            if flag.startswith("--"):
                flags.append(f"-l {flag[2:]}")
            elif len(flag) == 2:
                flags.append(f"-s {flag[1]}")
            else:
                flags.append(f"-o {flag[1:]}")
        if option.value is not None:
            flags.append("-r" if option.value.kind == "files" else "-x")
            flags.append(_fish_value(option.value))
        flags.append(f"-d {_fish_quoted(option.help)}")
        lines.append(complete(where, " ".join(f for f in flags if f)))
    for index, positional in enumerate(command.positionals):
        value = _fish_value(positional.value)
        if value:
            at = where if positional.repeats else f"{where} {index}"
            lines.append(complete(at, value))
    return lines


def _fish(tree: Command) -> str:
    commands = tree.walk()
    valued = [f"{c.key} {flag}" for c in commands for o in c.options if o.value for flag in o.flags]
    parts = [
        "# fish completion for queuectl, generated by `queuectl completion fish`.\n",
        _FISH_HELPERS
        % {
            "commands": " ".join(_fish_quoted(c.key) for c in commands[1:]),
            "valued": " ".join(_fish_quoted(v) for v in valued),
            **_template_values(_fish_quoted),
        },
    ]
    for command in commands:
        parts += _fish_lines(command)
    return "\n".join(parts) + "\n"
