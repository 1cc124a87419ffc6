DROP FUNCTION identity_customers(text, text);
