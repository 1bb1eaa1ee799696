// Package fileperm states once the modes kiln creates files and directories with: its
// user's only. A state directory holds the stack's secrets passphrase, its state and
// history, logs that may carry an application's output, and the images; another local
// user has no business reading, listing or entering any of it.
package fileperm

import "io/fs"

const (
	// Dir is every directory kiln creates.
	Dir fs.FileMode = 0o700
	// File is every file kiln writes that is not a program.
	File fs.FileMode = 0o600
	// Exec is every program kiln writes (the binaries of an image).
	Exec fs.FileMode = 0o700
)
