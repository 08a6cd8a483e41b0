// The built-in recipes, registered under the names SlapOS profiles use (docs/recipes.md).
export {};
