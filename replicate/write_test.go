package replicate

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRequeueAfter(t *testing.T) {
	held := &requeue{after: 4 * time.Second, why: "write held back"}
	creates := &requeue{after: time.Second, why: "creates not seen"}
	failed := errors.New("update failed")
	tests := map[string]struct {
		err       error
		wantAfter time.Duration
		wantOnly  bool
	}{
		"no error asks for nothing":                      {err: nil},
		"a failure is no requeue":                        {err: failed},
		"a requeue is one":                               {err: held, wantAfter: 4 * time.Second, wantOnly: true},
		"several requeues take the shortest pause":       {err: errors.Join(held, creates), wantAfter: time.Second, wantOnly: true},
		"a requeue beside a failure leaves it a failure": {err: errors.Join(held, failed)},
		"nested joins are looked into":                   {err: errors.Join(errors.Join(held), creates), wantAfter: time.Second, wantOnly: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			after, only := requeueAfter(tt.err)
			assert.Equal(t, tt.wantOnly, only)
			if tt.wantOnly {
				assert.Equal(t, tt.wantAfter, after)
			}
		})
	}
}
