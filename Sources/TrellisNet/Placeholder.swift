public enum TrellisNetPlaceholder {}
