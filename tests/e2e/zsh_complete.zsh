# zsh zsh_complete.zsh DIR LINE: the candidates zsh offers for TAB after LINE, one a line,
# with the completion functions in DIR first on $fpath.
#
# zsh completes only in its line editor, so an interactive zsh runs in a pseudo-terminal
# (zpty). Its compadd is wrapped to print what the completion functions add instead of
# adding it; a line holding a NUL goes before the completion and after it, then it exits.
zmodload zsh/zpty || exit 2
setup=$(mktemp) || exit 2
trap 'rm -f $setup' EXIT
print -r -- "fpath=(${(q)1} \$fpath)" > $setup
cat >> $setup <<'SETUP'
PROMPT=
autoload -U compinit && compinit -u -D
bindkey '^I' complete-word
__mark() { print -r -- $'\0' }
compprefuncs=(__mark)
comppostfuncs=(__mark exit)
compadd() {
  # -O, -A or -D: a helper collecting matches into an array, not adding them.
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then
    builtin compadd "$@"
    return
  fi
  local -a matches
  builtin compadd -A matches "$@"
  (( $#matches )) && print -rl -- $matches
}
print ready
SETUP
zpty shell zsh -f -i
zpty -w shell "source ${(q)setup}"
repeat 50; do
  zpty -r shell line && [[ $line == ready* ]] && break
done
zpty -w shell "$2"$'\t'
integer marks=0
while zpty -r shell; do :; done | while IFS= read -r line; do
  if [[ $line == *$'\0'* ]]; then
    (( marks++ )) && exit 0
  elif (( marks )); then
    print -r -- ${line%$'\r'}
  fi
done
