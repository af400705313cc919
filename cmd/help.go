package cmd

import (
	"fmt"
	"io"
)

// wantsHelp reports whether args ask for help: -h, -help or --help before
// any "--".
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// plainUsage is the help of commands that take no flags, so that
// "sks CMD -h" answers with it instead of running CMD.
var plainUsage = map[string]string{
	"version":       "usage: sks version\n\nPrints the sks version and the protocol it speaks. Same as sks --version.",
	"hash-password": "usage: sks hash-password\n\nReads a password (without echo on a terminal, else the first line of stdin)\nand prints its bcrypt hash for a static module's users = { name = \"<hash>\" }.",
	"logout":        "usage: sks logout\n\nRevokes the session kept by sks login and deletes it.",
	"apikey":        "usage: sks apikey new [-f keys.properties] <key id>\n\nAdds a new HMAC API key to the keys file (created with mode 600) and prints id=key.",
}

// printHelp writes the help of a flagless command.
func printHelp(w io.Writer, name string) bool {
	u, ok := plainUsage[name]
	if ok {
		fmt.Fprintln(w, u)
	}
	return ok
}
