package conf

import (
	"strings"
)

// Problem is one configuration error and the setting it is about, so that
// "sks check-config" can point at the line.
type Problem struct {
	// Key is the setting's path, e.g. ["realms", "rcloud", "default"];
	// empty when the problem is not tied to one setting.
	Key []string
	// Msg says what is wrong and how to fix it.
	Msg string
}

// Error returns Msg.
func (p Problem) Error() string { return p.Msg }

// ProblemList is what Parse and Validate return when the configuration has
// errors: every one of them, not only the first.
type ProblemList []Problem

// Error writes one problem per line.
func (l ProblemList) Error() string {
	msgs := make([]string, len(l))
	for i, p := range l {
		msgs[i] = p.Msg
	}
	return strings.Join(msgs, "\n")
}

// orNil returns l as an error, or nil when it is empty.
func (l ProblemList) orNil() error {
	if len(l) == 0 {
		return nil
	}
	return l
}
