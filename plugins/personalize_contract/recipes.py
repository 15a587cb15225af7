"""Personalize's recipes ("Choosing a recipe"): ARNs, types, and which accept trainingMode UPDATE."""

from __future__ import annotations

RECIPE_ARN_PREFIX = "arn:aws:personalize:::recipe/"

# Recipe name -> recipeType (DescribeRecipe), for the custom-resource recipes of item recommenders.
RECIPE_TYPES = {
    "aws-user-personalization": "USER_PERSONALIZATION",
    "aws-user-personalization-v2": "USER_PERSONALIZATION",
    "aws-personalized-ranking": "PERSONALIZED_RANKING",
    "aws-personalized-ranking-v2": "PERSONALIZED_RANKING",
    "aws-similar-items": "RELATED_ITEMS",
    "aws-sims": "RELATED_ITEMS",
    "aws-trending-now": "POPULAR_ITEMS",
    "aws-popularity-count": "POPULAR_ITEMS",
    "aws-hrnn-coldstart": "USER_PERSONALIZATION",  # legacy
}
# Every recipe Personalize offers for custom solutions (developer guide, "Choosing a recipe"), so a
# misspelt recipe fails at parse time instead of at CreateSolution after the data was imported.
KNOWN_RECIPES = frozenset(
    {
        "aws-user-personalization",
        "aws-user-personalization-v2",
        "aws-personalized-ranking",
        "aws-personalized-ranking-v2",
        "aws-similar-items",
        "aws-sims",
        "aws-semantic-similarity",
        "aws-trending-now",
        "aws-popularity-count",
        "aws-next-best-action",
        "aws-item-affinity",
        "aws-item-attribute-affinity",
        "aws-hrnn",
        "aws-hrnn-metadata",
        "aws-hrnn-coldstart",
    }
)
# Recipes whose solutions accept trainingMode UPDATE (Personalize: only these, after a FULL version).
UPDATE_RECIPES = frozenset({"aws-user-personalization", "aws-user-personalization-v2", "aws-hrnn-coldstart"})


def recipe_arn(name: str) -> str:
    return RECIPE_ARN_PREFIX + name


def recipe_name(arn_or_name: str) -> str:
    """The recipe's name, from its ARN or from its name."""
    return arn_or_name.removeprefix(RECIPE_ARN_PREFIX)


# What a recipe type's recommendations are asked with (personalize-runtime, and the batch input
# JSON lines: "Preparing input data for batch recommendations"):
# - USER: GetRecommendations with userId; batch lines {"userId": ...}
# - ITEM: GetRecommendations with itemId (related items); batch lines {"itemId": ...}
# - USER_AND_ITEMS: GetPersonalizedRanking with userId and inputList; batch lines
#   {"userId": ..., "itemList": [...]}
SERVING_INPUTS = {
    "USER_PERSONALIZATION": "USER",
    "POPULAR_ITEMS": "USER",
    "RELATED_ITEMS": "ITEM",
    "PERSONALIZED_RANKING": "USER_AND_ITEMS",
}


def serving_input(recipe: str) -> str:
    """USER, ITEM or USER_AND_ITEMS for a recipe name or ARN; ValueError for a recipe without one."""
    recipe_type = RECIPE_TYPES.get(recipe_name(recipe))
    if recipe_type not in SERVING_INPUTS:
        raise ValueError(
            f"recipe {recipe_name(recipe)}: no smoke test or batch input is known for its type "
            f"({recipe_type or 'unknown'}); the pipeline serves {sorted(RECIPE_TYPES)}"
        )
    return SERVING_INPUTS[recipe_type]
