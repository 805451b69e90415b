/** Building a Dataset from its recipe (recipe.ts): what a worker does with the data a trial names. */
import { Dataset } from "./dataset.js";
import { checkRecipe, type DatasetRecipe, type RecipeStep } from "./recipe.js";

function applyStep(ds: Dataset, step: RecipeStep): Dataset {
  if ("take" in step) return ds.take(step.take);
  if ("slice" in step) return ds.slice(...step.slice);
  if ("shuffle" in step) return ds.shuffle(step.shuffle);
  return ds.split(step.split.fractions, step.split.seed)[step.split.part];
}

function build(recipe: DatasetRecipe): Dataset {
  const source =
    "load" in recipe
      ? Dataset.load(recipe.load, recipe.options ?? {})
      : "rows" in recipe
        ? Dataset.fromRows(recipe.rows, recipe.name)
        : recipe.concat.map(build).reduce((a, b) => a.concat(b));
  return (recipe.steps ?? []).reduce(applyStep, source);
}

/** The dataset a recipe describes; a malformed recipe is a UserError naming `where` and the field. */
export function replayRecipe(recipe: unknown, where = "data recipe"): Dataset {
  return build(checkRecipe(recipe, where));
}
