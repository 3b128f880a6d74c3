package state

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// Finding 7: `run --output json` names fields in snake_case, as `plan` and `status` do; results
// recorded before under Go's field names still read back.
func TestResultJSONIsSnakeCaseAndReadsTheOldForm(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	data, err := json.Marshal(Result{RunID: 7, Certificate: "www", Device: "web1", Action: "renew", Outcome: OutcomeDeployed, Step: StepDone, FinishedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"run_id":7`, `"certificate":"www"`, `"outcome":"deployed"`, `"finished_at":"2026-01-02T03:04:05Z"`} {
		if !strings.Contains(string(data), key) {
			t.Errorf("%s lacks %s", data, key)
		}
	}
	var old Result
	if err := json.Unmarshal([]byte(`{"RunID":7,"Certificate":"www","Outcome":"failed","Error":"x","FinishedAt":"2026-01-02T03:04:05Z"}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.RunID != 7 || old.Certificate != "www" || old.Outcome != OutcomeFailed || !old.FinishedAt.Equal(at) {
		t.Fatalf("old form: %+v", old)
	}
}
