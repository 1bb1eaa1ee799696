package backup

import (
	"fmt"
	"strconv"
	"strings"
)

// SegmentShare is the part of a dump's scan segments one machine takes:
// "0-7/32" means segments 0 to 7 inclusive of 32.
type SegmentShare struct {
	First, Last, Total int
}

// ParseSegmentShare parses "FIRST-LAST/TOTAL", "N/TOTAL" or "TOTAL" (all segments).
func ParseSegmentShare(s string) (SegmentShare, error) {
	bad := func(why string) (SegmentShare, error) {
		return SegmentShare{}, fmt.Errorf("--segments %q: %s (want FIRST-LAST/TOTAL, e.g. 0-7/32, or TOTAL)", s, why)
	}
	rng, total, ok := strings.Cut(s, "/")
	if !ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return bad("total must be a positive number")
		}
		return SegmentShare{0, n - 1, n}, nil
	}
	n, err := strconv.Atoi(total)
	if err != nil || n < 1 || n > 1000000 {
		return bad("total must be between 1 and 1000000")
	}
	a, b, isRange := strings.Cut(rng, "-")
	first, err := strconv.Atoi(a)
	if err != nil {
		return bad("first segment is not a number")
	}
	last := first
	if isRange {
		if last, err = strconv.Atoi(b); err != nil {
			return bad("last segment is not a number")
		}
	}
	if first < 0 || last < first || last >= n {
		return bad(fmt.Sprintf("need 0 <= first <= last < %d", n))
	}
	return SegmentShare{first, last, n}, nil
}

// String formats the share as FIRST-LAST/TOTAL.
func (s SegmentShare) String() string { return fmt.Sprintf("%d-%d/%d", s.First, s.Last, s.Total) }
