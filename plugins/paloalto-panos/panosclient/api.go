package panosclient

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Escape returns s as XML character data, safe inside an element or a quoted attribute.
func Escape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// XPathLiteral quotes s as an XPath 1.0 string literal. XPath has no escape character: a value
// with an apostrophe is quoted with double quotes, and one with both quote kinds cannot be
// written as a literal at all.
func XPathLiteral(s string) (string, error) {
	switch {
	case !strings.Contains(s, "'"):
		return "'" + s + "'", nil
	case !strings.Contains(s, `"`):
		return `"` + s + `"`, nil
	}
	return "", fmt.Errorf("name %q holds both ' and \": PAN-OS xpaths cannot address it", s)
}

// EntryXPath is parent/entry[@name=<name>].
func EntryXPath(parent, name string) (string, error) {
	lit, err := XPathLiteral(name)
	if err != nil {
		return "", err
	}
	return parent + "/entry[@name=" + lit + "]", nil
}

// Op runs an operational command (type=op); cmd is its XML form.
func (c *Client) Op(ctx context.Context, cmd string) (*Response, error) {
	resp, _, err := c.do(ctx, url.Values{"type": {"op"}, "cmd": {cmd}}, nil)
	return resp, err
}

// Get reads the candidate configuration at xpath and returns the <result> element. An absent
// object is an *APIError whose NotFound is true (PAN-OS answers success with code 7).
func (c *Client) Get(ctx context.Context, xpath string) (*Element, error) {
	return c.config(ctx, "get", xpath)
}

// Show reads the running configuration at xpath and returns the <result> element.
func (c *Client) Show(ctx context.Context, xpath string) (*Element, error) {
	return c.config(ctx, "show", xpath)
}

func (c *Client) config(ctx context.Context, action, xpath string) (*Element, error) {
	resp, _, err := c.do(ctx, url.Values{"type": {"config"}, "action": {action}, "xpath": {xpath}}, nil)
	if err != nil {
		return nil, err
	}
	if resp.Result == nil {
		// Some versions answer an absent object with an empty success; treat it as absent too.
		return nil, &APIError{Status: resp.Status, Code: "7", Messages: []string{"no result for " + xpath}}
	}
	return resp.Result, nil
}

// Set merges element into the candidate configuration at xpath, creating the path.
func (c *Client) Set(ctx context.Context, xpath, element string) error {
	_, _, err := c.do(ctx, url.Values{"type": {"config"}, "action": {"set"}, "xpath": {xpath}, "element": {element}}, nil)
	return err
}

// Edit replaces the node at xpath with element in the candidate configuration.
func (c *Client) Edit(ctx context.Context, xpath, element string) error {
	_, _, err := c.do(ctx, url.Values{"type": {"config"}, "action": {"edit"}, "xpath": {xpath}, "element": {element}}, nil)
	return err
}

// Delete removes the node at xpath from the candidate configuration.
func (c *Client) Delete(ctx context.Context, xpath string) error {
	_, _, err := c.do(ctx, url.Values{"type": {"config"}, "action": {"delete"}, "xpath": {xpath}}, nil)
	return err
}

// Export runs type=export with params and returns the raw file. An XML envelope in place of the
// file is an error (PAN-OS answers a bad export with one, e.g. code 400 "format is required").
func (c *Client) Export(ctx context.Context, params url.Values) ([]byte, error) {
	form := url.Values{"type": {"export"}}
	for k, v := range params {
		form[k] = v
	}
	resp, raw, err := c.do(ctx, form, nil)
	if err != nil {
		return nil, err
	}
	if resp != nil {
		return nil, fmt.Errorf("export answered with an XML envelope instead of a file: %s", strings.Join(resp.Messages, "; "))
	}
	return raw, nil
}

// Import uploads content as a multipart file with type=import and params (category,
// certificate-name, format, ...), all sent as form fields beside the file.
func (c *Client) Import(ctx context.Context, params url.Values, filename string, content []byte) (*Response, error) {
	form := url.Values{"type": {"import"}}
	for k, v := range params {
		form[k] = v
	}
	resp, _, err := c.do(ctx, form, &upload{filename: filename, content: content})
	if err == nil && resp == nil {
		return nil, errors.New("import answered without an XML envelope")
	}
	return resp, err
}

// CommitAnswer is what a commit request returns before its job runs.
type CommitAnswer struct {
	// JobID is empty when there was nothing to commit.
	JobID    string
	Messages []string
}

// Commit starts a commit; cmd is the <commit> element. partial sends action=partial, which PAN-OS
// requires for a <partial> commit. With nothing to commit the device answers without a job id
// ("There are no changes to commit."), which is not an error.
func (c *Client) Commit(ctx context.Context, cmd string, partial bool) (CommitAnswer, error) {
	form := url.Values{"type": {"commit"}, "cmd": {cmd}}
	if partial {
		form.Set("action", "partial")
	}
	resp, _, err := c.do(ctx, form, nil)
	if err != nil {
		return CommitAnswer{}, err
	}
	return CommitAnswer{JobID: resp.Result.Value("job"), Messages: resp.Messages}, nil
}

// Job is the state of a device job (show jobs id).
type Job struct {
	ID          string
	Type        string
	User        string
	Description string
	// Status: PEND (queued), ACT (running), FIN (finished).
	Status string
	// Result: PEND while running, then OK or FAIL.
	Result   string
	Progress int
	Details  []string
	Warnings []string
}

// Finished reports a job that has ended, well or not.
func (j *Job) Finished() bool { return strings.EqualFold(j.Status, "FIN") }

// OK reports a job that ended well.
func (j *Job) OK() bool { return j.Finished() && strings.EqualFold(j.Result, "OK") }

// Job reads job id.
func (c *Client) Job(ctx context.Context, id string) (*Job, error) {
	resp, err := c.Op(ctx, "<show><jobs><id>"+Escape(id)+"</id></jobs></show>")
	if err != nil {
		return nil, err
	}
	e := resp.Result.Child("job")
	if e == nil {
		return nil, fmt.Errorf("show jobs id %s: the answer holds no job", id)
	}
	j := &Job{
		ID: e.Value("id"), Type: e.Value("type"), User: e.Value("user"), Description: e.Value("description"),
		Status: e.Value("status"), Result: e.Value("result"),
		Details: texts(e.Child("details")), Warnings: texts(e.Child("warnings")),
	}
	// progress is a number while running, sometimes a timestamp once finished.
	if p, err := strconv.Atoi(e.Value("progress")); err == nil {
		j.Progress = p
	}
	return j, nil
}

// WaitForJob polls job id every interval until it finishes or ctx ends.
func (c *Client) WaitForJob(ctx context.Context, id string, interval time.Duration) (*Job, error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		j, err := c.Job(ctx, id)
		if err != nil {
			return nil, err
		}
		if j.Finished() {
			return j, nil
		}
		select {
		case <-ctx.Done():
			return j, ctx.Err()
		case <-t.C:
		}
	}
}

// texts collects the non-empty leaf texts below e in document order: job details come as
// <line>s, nested lines, or <newjob><newmsg> blocks depending on the version.
func texts(e *Element) []string {
	if e == nil {
		return nil
	}
	var out []string
	var walk func(n *Element)
	walk = func(n *Element) {
		if len(n.Children) == 0 {
			if s := strings.TrimSpace(n.Text); s != "" {
				out = append(out, s)
			}
			return
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	for _, c := range e.Children {
		walk(c)
	}
	if len(out) == 0 {
		if s := strings.TrimSpace(e.Text); s != "" {
			out = append(out, s)
		}
	}
	return out
}
