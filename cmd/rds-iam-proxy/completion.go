package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
)

const completionHelp = `rds-iam-proxy completion bash|zsh|fish

Prints a shell completion script for commands, flags and the values of
flags that take one of a few words. Load it:

  bash:  source <(rds-iam-proxy completion bash)       (in ~/.bashrc; needs bash-completion for -o default)
  zsh:   source <(rds-iam-proxy completion zsh)        (in ~/.zshrc, after compinit)
         or save it as _rds-iam-proxy in a directory on $fpath
  fish:  rds-iam-proxy completion fish > ~/.config/fish/completions/rds-iam-proxy.fish
`

// flagWords are the values of flags that take one of a few words, for
// completion.
var flagWords = map[string][]string{
	"engine":     {"postgres", "mysql"},
	"tls-mode":   {"verify-full", "verify-ca", "disable"},
	"log-level":  {"debug", "info", "warn", "error"},
	"log-format": {"text", "json"},
	"format":     {"text", "json"},
	"kind":       {"identity", "trust"},
}

// complFlag is one flag as a completion script offers it.
type complFlag struct {
	name, desc string
	isBool     bool
}

// complCommand is one command ("setup sql" included) and its flags.
type complCommand struct {
	name, summary string
	flags         []complFlag
}

// completionModel lists every command with the flags its own code
// registers (flagSetOf), so a setting added to the table is completed
// without touching this file.
func completionModel() []complCommand {
	var out []complCommand
	for _, c := range commandList {
		cc := complCommand{name: c.name, summary: c.summary}
		if fs := flagSetOf(strings.Fields(c.name)); fs != nil {
			fs.VisitAll(func(f *flag.Flag) {
				cc.flags = append(cc.flags, complFlag{name: f.Name, desc: shortDesc(f.Usage), isBool: isBoolFlag(f)})
			})
		}
		out = append(out, cc)
	}
	return out
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// shortDesc is a usage text's first clause, short enough for a menu.
func shortDesc(usage string) string {
	_, usage = flag.UnquoteUsage(&flag.Flag{Usage: usage})
	for _, sep := range []string{"; ", ": ", " ("} {
		if i := strings.Index(usage, sep); i > 0 && i < 70 {
			usage = usage[:i]
		}
	}
	if r := []rune(usage); len(r) > 70 {
		usage = string(r[:67]) + "..."
	}
	return usage
}

// cmdCompletion is "completion bash|zsh|fish".
func cmdCompletion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, completionHelp)
		return 0
	}
	if len(args) != 1 {
		fmt.Fprint(stderr, completionHelp)
		return 2
	}
	model := completionModel()
	switch args[0] {
	case "bash":
		writeBash(stdout, model)
	case "zsh":
		writeZsh(stdout, model)
	case "fish":
		writeFish(stdout, model)
	default:
		fmt.Fprintf(stderr, "rds-iam-proxy completion: unknown shell %q%s: use bash, zsh or fish\n", args[0], didYouMean(args[0], []string{"bash", "zsh", "fish"}, ""))
		return 2
	}
	return 0
}

// shQuote quotes s for bash, zsh and fish alike: single quotes, with a
// quote written as '\” (fish reads \' inside single quotes the same way).
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// fishQuote quotes s for fish, whose single quotes take \' and \\.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// flagLists are a command's flags as "--a --b" and its booleans as
// " --x --y " (spaces around each, for a *" --x "* match).
func flagLists(c complCommand) (all, bools string) {
	var a []string
	bools = " "
	for _, f := range c.flags {
		a = append(a, "--"+f.name)
		if f.isBool {
			bools += "--" + f.name + " "
		}
	}
	return strings.Join(a, " "), bools
}

// wordCases is the case arms giving the words a flag takes, for bash and
// zsh; emit is how the shell offers them.
func wordCases(w io.Writer, indent string, emit func(words string) string, other string) {
	for _, name := range sortedKeys(flagWords) {
		fmt.Fprintf(w, "%s%s) %s ;;\n", indent, name, emit(strings.Join(flagWords[name], " ")))
	}
	fmt.Fprintf(w, "%s*) %s ;;\n", indent, other)
}

func sortedKeys(m map[string][]string) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	return keys
}

func writeBash(w io.Writer, model []complCommand) {
	tops := strings.Join(topCommands(), " ")
	fmt.Fprintf(w, `# bash completion for rds-iam-proxy: source <(rds-iam-proxy completion bash)
_rds_iam_proxy() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local cmd="" sub="" i w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        [[ $w == -* ]] && continue
        if [[ -z $cmd ]]; then
            [[ " %s " == *" $w "* ]] && cmd=$w
        elif [[ $cmd == setup && -z $sub ]]; then
            sub=$w
        fi
    done
    local key=${cmd:-run} flags="" bools=" "
    [[ $cmd == setup && -n $sub ]] && key="setup $sub"
    case $key in
`, tops)
	for _, c := range model {
		all, bools := flagLists(c)
		if all == "" {
			continue
		}
		fmt.Fprintf(w, "        %s) flags=%s; bools=%s ;;\n", shQuote(c.name), shQuote(all), shQuote(bools))
	}
	fmt.Fprint(w, `    esac
    if [[ $cur != -* && $prev == --* && " $flags " == *" $prev "* && $bools != *" $prev "* ]]; then
        case ${prev#--} in
`)
	wordCases(w, "            ", func(words string) string {
		return `COMPREPLY=($(compgen -W "` + words + `" -- "$cur"))`
	}, `COMPREPLY=($(compgen -f -- "$cur"))`)
	fmt.Fprintf(w, `        esac
        return 0
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
        return 0
    fi
    case $cmd in
        "") COMPREPLY=($(compgen -W "%s" -- "$cur")) ;;
        setup) [[ -z $sub ]] && COMPREPLY=($(compgen -W "sql policy" -- "$cur")) ;;
        help) COMPREPLY=($(compgen -W "%s" -- "$cur")) ;;
        completion) COMPREPLY=($(compgen -W "bash zsh fish" -- "$cur")) ;;
    esac
    return 0
}
complete -o default -F _rds_iam_proxy rds-iam-proxy
`, tops, tops)
}

func writeZsh(w io.Writer, model []complCommand) {
	tops := strings.Join(topCommands(), " ")
	fmt.Fprintf(w, `#compdef rds-iam-proxy
# zsh completion for rds-iam-proxy: source <(rds-iam-proxy completion zsh),
# or save as _rds-iam-proxy in a directory on $fpath.
compdef _rds_iam_proxy rds-iam-proxy

_rds_iam_proxy() {
    local cmd="" sub="" i w
    for ((i = 2; i < CURRENT; i++)); do
        w=${words[i]}
        [[ $w == -* ]] && continue
        if [[ -z $cmd ]]; then
            [[ " %s " == *" $w "* ]] && cmd=$w
        elif [[ $cmd == setup && -z $sub ]]; then
            sub=$w
        fi
    done
    local cur=${words[CURRENT]} prev=${words[CURRENT-1]}
    local key=${cmd:-run} bools=" "
    local -a flags
    [[ $cmd == setup && -n $sub ]] && key="setup $sub"
    case $key in
`, tops)
	for _, c := range model {
		if len(c.flags) == 0 {
			continue
		}
		var items []string
		for _, f := range c.flags {
			items = append(items, shQuote("--"+f.name+":"+f.desc))
		}
		_, bools := flagLists(c)
		fmt.Fprintf(w, "        %s) flags=(%s); bools=%s ;;\n", shQuote(c.name), strings.Join(items, " "), shQuote(bools))
	}
	var cmds []string
	for _, c := range model {
		if !strings.Contains(c.name, " ") {
			cmds = append(cmds, shQuote(c.name+":"+c.summary))
		}
	}
	fmt.Fprint(w, `    esac
    if [[ $cur != -* && $prev == --* && -n ${flags[(r)${prev}:*]} && $bools != *" $prev "* ]]; then
        case ${prev#--} in
`)
	wordCases(w, "            ", func(words string) string { return "compadd -- " + words }, "_files")
	fmt.Fprintf(w, `        esac
        return
    fi
    if [[ $cur == -* ]]; then
        _describe -t flags flag flags
        return
    fi
    local -a cmds
    cmds=(%s)
    case $cmd in
        "") _describe -t commands command cmds ;;
        setup) [[ -z $sub ]] && compadd -- sql policy ;;
        help) _describe -t commands command cmds ;;
        completion) compadd -- bash zsh fish ;;
    esac
}

if [ "$funcstack[1]" = "_rds_iam_proxy" ]; then
    _rds_iam_proxy "$@"
fi
`, strings.Join(cmds, " "))
}

func writeFish(w io.Writer, model []complCommand) {
	tops := strings.Join(topCommands(), " ")
	fmt.Fprintf(w, "# fish completion for rds-iam-proxy: rds-iam-proxy completion fish > ~/.config/fish/completions/rds-iam-proxy.fish\n")
	fmt.Fprintf(w, "complete -c rds-iam-proxy -f\n")
	for _, c := range model {
		if !strings.Contains(c.name, " ") {
			fmt.Fprintf(w, "complete -c rds-iam-proxy -n %s -a %s -d %s\n", fishQuote("not __fish_seen_subcommand_from "+tops), c.name, fishQuote(c.summary))
		}
	}
	for _, c := range model {
		if sub, ok := strings.CutPrefix(c.name, "setup "); ok {
			fmt.Fprintf(w, "complete -c rds-iam-proxy -n %s -a %s -d %s\n", fishQuote("__fish_seen_subcommand_from setup; and not __fish_seen_subcommand_from sql policy"), sub, fishQuote(c.summary))
		}
	}
	fmt.Fprintf(w, "complete -c rds-iam-proxy -n %s -a 'bash zsh fish'\n", fishQuote("__fish_seen_subcommand_from completion"))
	fmt.Fprintf(w, "complete -c rds-iam-proxy -n %s -a %s\n", fishQuote("__fish_seen_subcommand_from help"), fishQuote(tops))
	for _, c := range model {
		var cond string
		switch {
		case c.name == "run":
			// run is also the command when none is named.
			cond = "__fish_seen_subcommand_from run; or not __fish_seen_subcommand_from " + tops
		case strings.HasPrefix(c.name, "setup "):
			cond = "__fish_seen_subcommand_from setup; and __fish_seen_subcommand_from " + strings.TrimPrefix(c.name, "setup ")
		default:
			cond = "__fish_seen_subcommand_from " + c.name
		}
		for _, f := range c.flags {
			arg := " -r -F"
			if f.isBool {
				arg = ""
			} else if words, ok := flagWords[f.name]; ok {
				arg = " -x -a " + fishQuote(strings.Join(words, " "))
			}
			fmt.Fprintf(w, "complete -c rds-iam-proxy -n %s -l %s%s -d %s\n", fishQuote(cond), f.name, arg, fishQuote(f.desc))
		}
	}
}
