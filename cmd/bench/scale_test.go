package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMedian(t *testing.T) {
	for name, tt := range map[string]struct {
		xs   []float64
		want float64
	}{
		"one value is its own median":                    {[]float64{3}, 3},
		"an odd count gives the middle value, unsorted":  {[]float64{9, 1, 4}, 4},
		"an even count gives the mean of the middle two": {[]float64{4, 1, 3, 2}, 2.5},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tt.want, median(tt.xs))
		})
	}
}

func TestRatiosCompareEachRoundWithItsOwnRawCreate(t *testing.T) {
	row := scaleRow{Rounds: []scaleRound{
		{RawCreate: 10, PullUpdate: 12},
		{RawCreate: 20, PullUpdate: 30},
		{RawCreate: 15, PullUpdate: 15},
	}}
	med, lo, hi := row.ratios(func(r scaleRound) float64 { return r.PullUpdate })
	assert.Equal(t, 1.2, med, "ratios 1.2, 1.5, 1.0: the median is not the ratio of the medians (12/15)")
	assert.Equal(t, 1.0, lo)
	assert.Equal(t, 1.5, hi)

	med, lo, hi = scaleRow{}.ratios(func(r scaleRound) float64 { return r.PullUpdate })
	assert.Zero(t, med+lo+hi, "no rounds, no ratios")
}
