resource "terraform_data" "ok" {
  input = "fine"
}

# The next block is missing its closing brace and its value: a syntax error.
resource "terraform_data" "broken" {
  input =
