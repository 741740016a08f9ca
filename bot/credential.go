package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// CredentialError tells why the bot's credential got no token from Entra ID, in our own words: the
// HTTP status, Entra's error code and AADSTS numbers when Entra answered. azidentity's own error
// repeats the request's URL and Entra's whole answer; it is not kept.
func CredentialError(err error) error {
	if err == nil {
		return nil
	}
	var failed *azidentity.AuthenticationFailedError
	switch {
	case errors.As(err, &failed) && failed.RawResponse != nil:
		var answer struct {
			Error       string `json:"error"`
			Codes       []int  `json:"error_codes"`
			Description string `json:"error_description"`
		}
		if body, rerr := runtime.Payload(failed.RawResponse); rerr == nil {
			_ = json.Unmarshal(body, &answer)
		}
		why := fmt.Sprintf("HTTP %d", failed.RawResponse.StatusCode)
		if entraCode.MatchString(answer.Error) {
			why += " " + answer.Error
		}
		if len(answer.Codes) == 0 {
			if m := aadsts.FindStringSubmatch(answer.Description); m != nil {
				n, _ := strconv.Atoi(m[1])
				answer.Codes = []int{n}
			}
		}
		for i, c := range answer.Codes {
			if i == 3 {
				break
			}
			why += fmt.Sprintf(" AADSTS%d", c)
		}
		return &credentialError{"Entra ID refused the bot's token request: " + why, nil}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &credentialError{"Entra ID did not answer the bot's token request in time", contextOf(err)}
	case errors.As(err, &failed):
		return &credentialError{"Entra ID did not answer the bot's token request", nil}
	}
	return &credentialError{"the bot's credential got no token from Entra ID (" + typeName(err) + ")", nil}
}

var (
	// entraCode is what an OAuth error code looks like ("invalid_client").
	entraCode = regexp.MustCompile(`^[a-z_]{1,64}$`)
	// aadsts is Entra's error number in its description ("AADSTS7000215: Invalid client secret…").
	aadsts = regexp.MustCompile(`AADSTS(\d{1,9})\b`)
)

type credentialError struct {
	msg   string
	cause error // a context error, or nil
}

func (e *credentialError) Error() string { return e.msg }
func (e *credentialError) Unwrap() error { return e.cause }

// contextOf is the context error err holds.
func contextOf(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return context.Canceled
}

// typeName names an error by its type (azidentity's credentials have one each), never its text.
func typeName(err error) string {
	t := fmt.Sprintf("%T", err)
	return strings.TrimPrefix(t, "*")
}
