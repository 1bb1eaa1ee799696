// Package releases keeps, per stack and next to the stack's Pulumi state, what a rollout
// must not lose: the lock that lets one rollout at a time run, the record of the rollout in
// progress (so a killed kiln resumes where it stopped) and the history of releases.
//
// Every write is made for kill -9 at any instruction: files are replaced by rename after an
// fsync, the lock appears by link(2) with its content already on disk, and removals that
// depend on the file's content (unlock, break) are serialised by a kernel lock that dies
// with its holder. A reader therefore sees an old file or a new one, never a torn one, and
// no two processes can both come to believe that they hold the lock, unless someone breaks
// the lock of a process that is still running on another host (see [Store.BreakLock]).
//
// [Store] is what the rollout engine uses; [FileStore] implements it for the default file
// backend in <stateDir>/pulumi/.kiln/<stack>/ (see [Dir]). An S3 backend can implement it
// later with conditional writes.
//
// A FileStore directory holds:
//
//	lock.json     the holder (host, pid, kernel start time, user, command, since) while locked
//	state.json    the rollout in progress, absent when none is
//	history.json  {"records": [...]}: newest first, one record a line, at most MaxHistory
//	secrets.json  the stack's secrets, encrypted by its secrets provider (mode 0600)
//	.guard        an empty file, only ever flock(2)ed
//
// Temporary files named .<file>.<random> are what a killed writer left; OpenFileStore
// removes them once they are an hour old.
package releases
