package ingest

import (
	"fmt"
	"slices"
	"testing"
)

// TestCollectorListsKeyCollisions: a dotted key dropped for the nested member it names
// ({"a.b":1,"a":{"b":2}}) is listed among the collector's ignored members, as docs/values.md
// says, with reason key_collision and the member's path, in a batch and in a single call
// (tester14 F9: before, only the consumer counted it). The rule is setProperties', which the
// consumer's decode applies too.
func TestCollectorListsKeyCollisions(t *testing.T) {
	env := startCollector(t, nil)
	status, _, body := env.do(t, call{path: "/v1/batch", headers: basicWeb, body: []byte(`{"batch":[
		{"type":"track","userId":"nn4","event":"NN","timestamp":"2024-06-06T10:00:00Z","properties":{"a.b":1,"a":{"b":2}}},
		{"type":"identify","userId":"nn4","timestamp":"2024-06-06T10:00:00Z","traits":{"x.y":1,"x":{"y":2}}},
		{"type":"track","userId":"nn4","event":"NN","timestamp":"2024-06-06T10:00:00Z","context":{"traits":{"p.q":1,"p":{"q":2}}}},
		{"type":"track","userId":"nn4","event":"NN","timestamp":"2024-06-06T10:00:00Z","properties":{"a":{"b":2}},"context":{"userAgent":5}}]}`)})
	if status != 200 {
		t.Fatalf("POST /v1/batch: %d %v", status, body)
	}
	var got []string
	ignored, _ := body["ignored"].([]any)
	for _, ig := range ignored {
		m := ig.(map[string]any)
		got = append(got, fmt.Sprintf("%v %v %v", m["index"], m["field"], m["reason"]))
	}
	want := []string{
		"0 batch[0].properties.a.b key_collision",
		"1 batch[1].traits.x.y key_collision",
		"2 batch[2].context.traits.p.q key_collision",
		"3 batch[3].context.userAgent invalid_field",
	}
	if !slices.Equal(got, want) {
		t.Errorf("ignored\n got %v\nwant %v\n(answer %v)", got, want, body)
	}

	status, _, body = env.do(t, call{path: "/v1/track", headers: basicWeb,
		body: []byte(`{"userId":"nn5","event":"NN","properties":{"a":{"b":2},"a.b":1}}`)})
	ignored, _ = body["ignored"].([]any)
	if status != 200 || len(ignored) != 1 || ignored[0].(map[string]any)["field"] != "properties.a.b" {
		t.Errorf("POST /v1/track of a collision: %d %v, want 200 listing properties.a.b", status, body)
	}
}
