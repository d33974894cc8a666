package main

import (
	"errors"
	"flag"
	"fmt"
	"sort"
	"strings"
)

// maxSuggestDistance is how many typing mistakes (edits) a suggestion may
// correct: --endpont and --enpdoint are --endpoint; --port is nothing.
const maxSuggestDistance = 2

// closest returns the name in names nearest to typed: within
// maxSuggestDistance edits, else the one name typed is a prefix of.
func closest(typed string, names []string) (string, bool) {
	best, bestD := "", maxSuggestDistance+1
	for _, n := range names {
		if d := editDistance(typed, n); d < bestD {
			best, bestD = n, d
		}
	}
	if bestD <= maxSuggestDistance {
		return best, true
	}
	var prefixed []string
	for _, n := range names {
		if len(typed) >= 3 && strings.HasPrefix(n, typed) {
			prefixed = append(prefixed, n)
		}
	}
	if len(prefixed) == 1 {
		return prefixed[0], true
	}
	return "", false
}

// didYouMean is "; did you mean PREFIXname?" when a name is close to
// typed, else "".
func didYouMean(typed string, names []string, prefix string) string {
	if n, ok := closest(typed, names); ok {
		return fmt.Sprintf("; did you mean %s%s?", prefix, n)
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b, with a swap
// of two neighbours counted as one edit (optimal string alignment).
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// flagNames are the names of fs's flags, sorted.
func flagNames(fs *flag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	return names
}

// undefinedPrefix starts the flag package's error for an unknown flag.
const undefinedPrefix = "flag provided but not defined: "

// explainFlagError rewrites the flag package's errors for a person: an
// unknown flag is named with two dashes, the closest known one
// suggested, and the command's help page pointed to.
func explainFlagError(err error, fs *flag.FlagSet) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	page := "rds-iam-proxy help " + fs.Name()
	if name, ok := strings.CutPrefix(err.Error(), undefinedPrefix); ok {
		name = strings.TrimLeft(name, "-")
		return fmt.Errorf("unknown flag --%s%s (%s lists the flags)", name, didYouMean(name, flagNames(fs), "--"), page)
	}
	return fmt.Errorf("%w (%s lists the flags)", err, page)
}
