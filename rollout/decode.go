package rollout

import (
	"encoding/json"
	"fmt"
	"reflect"
)

// eventsByName maps an event's name to its type, from eventTypes.
var eventsByName = func() map[string]reflect.Type {
	m := make(map[string]reflect.Type, len(eventTypes))
	for _, ev := range eventTypes {
		if _, dup := m[ev.EventName()]; dup {
			panic("rollout: two events named " + ev.EventName())
		}
		m[ev.EventName()] = reflect.TypeOf(ev)
	}
	return m
}()

// UnmarshalEvent decodes one line written by MarshalEvent back into its typed event, so
// a process watching a rollout from outside sees the same events as the one running it.
func UnmarshalEvent(b []byte) (Event, error) {
	var head struct {
		Event string `json:"event"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, err
	}
	t, ok := eventsByName[head.Event]
	if !ok {
		return nil, fmt.Errorf("unknown event %q", head.Event)
	}
	v := reflect.New(t)
	if err := json.Unmarshal(b, v.Interface()); err != nil {
		return nil, err
	}
	return v.Elem().Interface().(Event), nil
}
