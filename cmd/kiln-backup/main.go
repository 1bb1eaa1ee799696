// Command kiln-backup dumps, follows, verifies and restores DynamoDB tables;
// see docs/backup-format.md.
package main

import (
	"os"

	"github.com/kilnhq/kiln/backup"
)

func main() { os.Exit(backup.Main(os.Args[1:])) }
