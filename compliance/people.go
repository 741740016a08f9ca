package compliance

// The people the archive's records are about, as the store's directory names them (the compliance
// API lets officers pick them by name).

// Kinds of people.
const (
	PersonEmployee = "employee" // a Teams user: ID is the Entra object id
	PersonCustomer = "customer" // a WeChat follower: ID is the openid
)

// Person is an employee or a customer, with their one display name.
type Person struct {
	Kind  string  `json:"kind"`
	ID    string  `json:"id"`
	Name  string  `json:"name"`
	Email string  `json:"email,omitempty"`
	Chats []int64 `json:"chats"` // the chats they are or were in
}

// ChatInfo is a chat as the directory knows it: its customer, its members and its status.
type ChatInfo struct {
	ID      int64    `json:"id"`
	Status  string   `json:"status"`
	Contact Person   `json:"contact"`
	Members []Person `json:"members"`
}
