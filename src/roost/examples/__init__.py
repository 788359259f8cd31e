"""Small, complete programs that use Roost; ``roost example`` runs them end to end."""
