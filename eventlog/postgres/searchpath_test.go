package postgres

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSchemaFromSearchPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "public"},
		{"outbox", "outbox"},
		{"Outbox, public", "outbox"},
		{`"Outbox", public`, "Outbox"},
		{`"$user", public`, "public"},
		{`"$user"`, "public"},
		{`"we""ird"`, `we"ird`},
		{" , app", "app"},
	} {
		assert.Equal(t, tc.want, schemaFromSearchPath(tc.in), tc.in)
	}
}

func TestValidateSchema(t *testing.T) {
	assert.NoError(t, validateSchema("public"))
	assert.ErrorContains(t, validateSchema(""), "empty")
	assert.ErrorContains(t, validateSchema(string(make([]byte, 64))), "more than PostgreSQL's 63")
}
