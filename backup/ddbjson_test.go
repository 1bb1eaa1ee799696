package backup

import (
	"bytes"
	"strings"
	"testing"
)

func TestItemJSONRoundTrip(t *testing.T) {
	for i := range 20 {
		it := makeItem(i, i == 3)
		b, err := appendItemJSON(nil, it)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeItemJSON(b)
		if err != nil {
			t.Fatalf("decode %s: %v", b[:min(len(b), 200)], err)
		}
		b2, _ := appendItemJSON(nil, back)
		if !bytes.Equal(b, b2) {
			t.Fatalf("item %d changed in a round trip:\n%s\n%s", i, b, b2)
		}
	}
}

func TestItemJSONExportFormat(t *testing.T) {
	it := makeItem(1, false)
	var buf bytes.Buffer
	w, _ := newVolumeWriter(&buf)
	w.add(Item{"pk": it["pk"], "b": it["b"], "null": it["null"]})
	w.close()
	var line string
	readLines(&buf, func(b []byte) error { line = string(b); return nil })
	want := `{"Item":{"b":{"B":"`
	if !strings.HasPrefix(line, want) || !strings.Contains(line, `"null":{"NULL":true}`) || !strings.Contains(line, `"pk":{"S":"user#1"}`) {
		t.Fatalf("line %s is not in DynamoDB export format", line)
	}
}

func TestVolumeBadLines(t *testing.T) {
	for name, body := range map[string]string{
		"not json":     "{\"Item\":{\"a\":{\"S\":\"x\"}}}\nnot json\n",
		"unknown type": "{\"Item\":{\"a\":{\"Q\":\"x\"}}}\n",
		"two types":    "{\"Item\":{\"a\":{\"S\":\"x\",\"N\":\"1\"}}}\n",
		"no Item":      "{\"a\":{\"S\":\"x\"}}\n",
	} {
		var buf bytes.Buffer
		w, _ := newVolumeWriter(&buf)
		for _, l := range strings.SplitAfter(body, "\n") {
			if l != "" {
				w.addLine([]byte(l))
			}
		}
		w.close()
		_, _, _, err := readVolume(&buf, nil)
		if err == nil || !strings.Contains(err.Error(), "line ") {
			t.Errorf("%s: want an error with a line number, got %v", name, err)
		}
	}
}
