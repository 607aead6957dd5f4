"""Small helpers with no knowledge of jobs or HTTP; both server and client may use them."""
