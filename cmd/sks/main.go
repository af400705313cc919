// Command sks is the session-key server. All of its work is in package cmd.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/sks-server/sks/cmd"
)

func main() {
	if err := cmd.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sks:", err)
		os.Exit(1)
	}
}
