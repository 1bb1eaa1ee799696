package rollout

import (
	"encoding/json"
	"fmt"
)

// UnmarshalEvent decodes one line written by MarshalEvent back into its typed event, so
// a process watching a rollout from outside sees the same events as the one running it.
func UnmarshalEvent(b []byte) (Event, error) {
	var head struct {
		Event string `json:"event"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, err
	}
	var ev Event
	var err error
	switch head.Event {
	case RolloutStarted{}.EventName():
		ev, err = decode[RolloutStarted](b)
	case PhaseStarted{}.EventName():
		ev, err = decode[PhaseStarted](b)
	case PhaseFinished{}.EventName():
		ev, err = decode[PhaseFinished](b)
	case Baked{}.EventName():
		ev, err = decode[Baked](b)
	case ResourceChanged{}.EventName():
		ev, err = decode[ResourceChanged](b)
	case HealthChanged{}.EventName():
		ev, err = decode[HealthChanged](b)
	case TrafficShifted{}.EventName():
		ev, err = decode[TrafficShifted](b)
	case Finished{}.EventName():
		ev, err = decode[Finished](b)
	case Recovered{}.EventName():
		ev, err = decode[Recovered](b)
	case Healing{}.EventName():
		ev, err = decode[Healing](b)
	case Paused{}.EventName():
		ev, err = decode[Paused](b)
	case Resumed{}.EventName():
		ev, err = decode[Resumed](b)
	case AnalysisMeasured{}.EventName():
		ev, err = decode[AnalysisMeasured](b)
	case AnalysisFinished{}.EventName():
		ev, err = decode[AnalysisFinished](b)
	default:
		return nil, fmt.Errorf("unknown event %q", head.Event)
	}
	return ev, err
}

func decode[T Event](b []byte) (Event, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return v, nil
}
