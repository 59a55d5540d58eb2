package driver

import (
	"errors"

	"github.com/volleyhq/volley/async"
)

// Sentinel errors of the driver layer; use errors.Is.
var (
	// ErrUnknownDriver reports a driver name nobody registered.
	ErrUnknownDriver = errors.New("driver: unknown driver")
	// ErrClosed reports use of a closed DB.
	ErrClosed = errors.New("driver: database is closed")
	// ErrPlacement reports that no device satisfies the query's placement
	// (an unusable hinted device, or no device the consumer accepts).
	ErrPlacement = errors.New("driver: placement failed")
	// ErrInvalid is async.ErrInvalid: bad options, DSNs and device hints
	// wrap it.
	ErrInvalid = async.ErrInvalid
)
