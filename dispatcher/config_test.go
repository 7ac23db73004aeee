package dispatcher

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDefaultConfigMatchesSeed(t *testing.T) {
	assert.Equal(t, Config{
		CheckpointInterval: 5 * time.Second,
		CheckpointTimeout:  5 * time.Second,
		StallTimeout:       5 * time.Minute,
		StallCheckInterval: 30 * time.Second,
		ProcessInterval:    10 * time.Millisecond,
		SeekTimeout:        30 * time.Second,
		BaseRetryInterval:  5 * time.Second,
		MaxRetryInterval:   5 * time.Minute,
	}, DefaultConfig())
	require.NoError(t, DefaultConfig().Validate())
}

func TestZeroFieldsTakeDefaults(t *testing.T) {
	require.NoError(t, Config{}.Validate())
	assert.Equal(t, DefaultConfig(), Config{}.WithDefaults())
	c := Config{StallTimeout: time.Minute}.WithDefaults()
	assert.Equal(t, time.Minute, c.StallTimeout)
	assert.Equal(t, 30*time.Second, c.StallCheckInterval)
}

func TestNegativeCheckpointIntervalDisablesCheckpointing(t *testing.T) {
	c := Config{CheckpointInterval: -1}
	require.NoError(t, c.Validate())
	assert.False(t, c.WithDefaults().CheckpointEnabled())
	assert.True(t, Config{}.WithDefaults().CheckpointEnabled())
}

func TestValidateRejectsEachBadField(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		field   string
		message string
	}{
		{"negative CheckpointTimeout", Config{CheckpointTimeout: -time.Second}, "CheckpointTimeout", "must be positive"},
		{"negative StallTimeout", Config{StallTimeout: -time.Second, StallCheckInterval: time.Second}, "StallTimeout", "must be positive"},
		{"negative StallCheckInterval", Config{StallCheckInterval: -time.Second}, "StallCheckInterval", "must be positive"},
		{"negative ProcessInterval", Config{ProcessInterval: -time.Millisecond}, "ProcessInterval", "must be positive"},
		{"negative SeekTimeout", Config{SeekTimeout: -time.Second}, "SeekTimeout", "must be positive"},
		{"negative BaseRetryInterval", Config{BaseRetryInterval: -time.Second}, "BaseRetryInterval", "must be positive"},
		{"negative MaxRetryInterval", Config{MaxRetryInterval: -time.Second}, "MaxRetryInterval", "must be positive"},
		{"max below base", Config{BaseRetryInterval: time.Minute, MaxRetryInterval: time.Second}, "MaxRetryInterval", "must not be less than BaseRetryInterval (1m0s)"},
		{"check not below stall", Config{StallTimeout: time.Second, StallCheckInterval: time.Second}, "StallCheckInterval", "must be less than StallTimeout (1s)"},
		{"default check above short stall", Config{StallTimeout: 10 * time.Second}, "StallCheckInterval", "must be less than StallTimeout (10s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			require.ErrorIs(t, err, ErrInvalidConfig)
			var ce *ConfigError
			require.True(t, errors.As(err, &ce))
			assert.Equal(t, tc.field, ce.Field)
			assert.Contains(t, err.Error(), "invalid config: "+tc.field)
			assert.Contains(t, err.Error(), tc.message)
		})
	}
}

func TestValidateReportsEveryBadField(t *testing.T) {
	err := Config{SeekTimeout: -1, ProcessInterval: -1}.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ProcessInterval")
	assert.Contains(t, err.Error(), "SeekTimeout")
}

func TestConfigJSONAcceptsHumanDurations(t *testing.T) {
	var c Config
	require.NoError(t, json.Unmarshal([]byte(`{"StallTimeout":"2m","StallCheckInterval":"10s","BaseRetryInterval":1000000}`), &c))
	assert.Equal(t, Config{StallTimeout: 2 * time.Minute, StallCheckInterval: 10 * time.Second, BaseRetryInterval: time.Millisecond}, c)

	b, err := json.Marshal(Config{CheckpointInterval: 5 * time.Second})
	require.NoError(t, err)
	assert.JSONEq(t, `{"CheckpointInterval":"5s"}`, string(b))

	var back Config
	full, err := json.Marshal(DefaultConfig())
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(full, &back))
	assert.Equal(t, DefaultConfig(), back)

	for in, msg := range map[string]string{
		`{"StallTimeout":"soon"}`: `"soon" is not a duration`,
		`{"StallTimout":"5s"}`:    `unknown field "StallTimout"`,
		`{"SeekTimeout":true}`:    `true is not a duration`,
		`[1]`:                     `config:`,
	} {
		err := json.Unmarshal([]byte(in), &c)
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), msg)
	}
}
